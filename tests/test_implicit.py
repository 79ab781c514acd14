"""The implicit (SVD++-style) model: its score, its neighbour lists, its L2, its checkpoint."""

import pytest
import torch
from movierec import checkpoint, models, training
from movierec.recommend import dot_tables
from schema_defaults import model_block
from test_training import low_rank, split

N_USERS, N_MOVIES = 4, 5
#: Training pairs: user 0 rated movies 1 and 3, user 1 movie 3, user 2 movies 0, 1, 4;
#: user 3 rated nothing (a cold user), movie 2 has no raters.
USER = torch.tensor([0, 0, 1, 2, 2, 2])
MOVIE = torch.tensor([3, 1, 3, 0, 4, 1])


def implicit_model(**keys):
    block = model_block(arch="implicit", n_factors=3, seed=4, implicit_weight_decay=0.2, **keys)
    model = models.build_model(block, N_USERS, N_MOVIES)
    with torch.no_grad():
        for table in (model.user_bias, model.movie_bias, model.movie_implicit, model.user_implicit):
            table.weight.normal_(0, 0.5)
    model.set_neighbours(USER, MOVIE)
    return model


def by_hand(model, user, movie):
    """score(u, m) from the definition, one pair at a time."""
    rated = {u: MOVIE[USER == u].tolist() for u in range(N_USERS)}
    raters = {m: USER[MOVIE == m].tolist() for m in range(N_MOVIES)}
    y_rows, z_rows = model.movie_implicit.weight, model.user_implicit.weight
    assert y_rows.shape[1] == z_rows.shape[1] == 3 + 1  # each row's bias weight last
    out = []
    for u, m in zip(user.tolist(), movie.tolist(), strict=True):
        y = sum((y_rows[j] for j in rated[u]), torch.zeros(4)) / max(len(rated[u]), 1) ** 0.5
        z = sum((z_rows[v] for v in raters[m]), torch.zeros(4)) / max(len(raters[m]), 1) ** 0.5
        vec_u, vec_m = model.user_emb.weight[u] + y[:3], model.movie_emb.weight[m] + z[:3]
        bias = model.user_bias.weight[u, 0] + model.movie_bias.weight[m, 0] + y[3] + z[3]
        out.append(vec_u @ vec_m + bias)
    return torch.stack(out)


def test_score_is_the_dot_of_composed_vectors_plus_biases():
    model = implicit_model()
    user = torch.tensor([0, 1, 2, 3, 0, 2, 3])
    movie = torch.tensor([1, 3, 2, 2, 0, 4, 1])
    torch.testing.assert_close(model.score(user, movie), by_hand(model, user, movie))
    # dot_tables holds the same composed vectors: what recommend, fold-in and the reports use.
    user_f, movie_f, user_b, movie_b = dot_tables(model)
    table_scores = (user_f[user] * movie_f[movie]).sum(1) + user_b[user] + movie_b[movie]
    torch.testing.assert_close(table_scores, model.score(user, movie))


def test_l2_penalty_puts_its_two_strengths_on_rows_and_composed_parts():
    model = implicit_model()
    user, movie = torch.tensor([0, 0, 3]), torch.tensor([1, 2, 2])
    y, z = model.implicit_parts(user, movie)
    rows = sum(
        t(i).square().sum()
        for t, i in ((model.user_emb, user), (model.movie_emb, movie),
                     (model.user_bias, user), (model.movie_bias, movie))
    )  # fmt: skip
    expected = 0.5 * rows + 0.2 * (y.square().sum() + z.square().sum())
    torch.testing.assert_close(model.l2_penalty(user, movie, 0.5), expected)
    assert not z[1].detach().any() and not y[2].detach().any()  # no neighbours: zeros
    # bias_weight_decay, when given, replaces weight_decay on the biases alone.
    biases = model.user_bias(user).square().sum() + model.movie_bias(movie).square().sum()
    for bias_decay in (0.0, 0.05):
        model.bias_weight_decay = bias_decay
        torch.testing.assert_close(
            model.l2_penalty(user, movie, 0.5), expected - (0.5 - bias_decay) * biases
        )
    assert implicit_model(bias_weight_decay=0.05).bias_weight_decay == 0.05  # from the block
    assert implicit_model().bias_weight_decay is None


def test_a_checkpoint_carries_the_neighbour_lists(tmp_path):
    model = implicit_model()
    block = model_block(arch="implicit", n_factors=3, seed=4, implicit_weight_decay=0.2)
    meta = {"arch": "implicit", "settings": block, "n_users": N_USERS, "n_movies": N_MOVIES}
    checkpoint.save_model(model, meta, tmp_path / "model.pt", tmp_path / "model.json")
    loaded, _ = checkpoint.load_model(tmp_path / "model.pt")
    user, movie = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 3, 0, 2])
    torch.testing.assert_close(loaded(user, movie), model(user, movie))
    assert torch.equal(loaded.user_movies, model.user_movies)


def test_without_neighbour_lists_it_refuses_to_score():
    block = model_block(arch="implicit", n_factors=3)
    model = models.build_model(block, N_USERS, N_MOVIES)
    with pytest.raises(RuntimeError, match="set_neighbours"):
        model(torch.tensor([0]), torch.tensor([0]))


def test_it_trains_with_the_reference_engine_and_the_fast_one_says_so():
    train, val = split(low_rank())
    block = model_block(arch="implicit", n_factors=4, seed=2, implicit_weight_decay=0.03)
    model = models.build_model(block, 60, 80)
    model.set_neighbours(train.user, train.movie)
    kwargs = dict(
        phases=[{"lr": 0.03, "epochs": 4}], batch_size=500, rating_scale=(0.5, 5.0),
        weight_decay=0.05,
    )  # fmt: skip
    result = training.fit(model, train, val, engine="reference", **kwargs)
    mean_rmse = (val.rating - train.rating.mean()).square().mean().sqrt().item()
    assert result["engine"] == "reference" and result["val_rmse"] < mean_rmse
    with pytest.raises(ValueError, match="fast engine has no step for ImplicitModel"):
        training.fit(model, train, val, engine="fast", **kwargs)


def test_two_threads_train_it_to_the_same_bits():
    """Same config, same numbers: no thread-order-dependent sum in its backward.

    Big enough that torch splits the gradient of a batch's repeated rows over two
    threads (the backward of ``z[index]`` did, in a thread-dependent order).
    """
    g = torch.Generator().manual_seed(0)
    n_users, n_movies, n = 300, 2000, 30_000
    user, movie = (
        torch.randint(n_users, (n,), generator=g),
        torch.randint(n_movies, (n,), generator=g),
    )
    rating = torch.randint(1, 11, (n,), generator=g).float() / 2
    train = training.Ratings(user[:25_000], movie[:25_000], rating[:25_000])
    val = training.Ratings(user[25_000:], movie[25_000:], rating[25_000:])
    block = model_block(arch="implicit", n_factors=50, seed=3, implicit_weight_decay=0.03)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        states = []
        for _ in range(2):
            model = models.build_model(block, n_users, n_movies)
            model.set_neighbours(train.user, train.movie)
            training.fit(
                model, train, val, phases=[{"lr": 0.01, "epochs": 1}], batch_size=8192,
                rating_scale=(0.5, 5.0), weight_decay=0.1, engine="reference",
            )  # fmt: skip
            states.append(model.state_dict())
    finally:
        torch.set_num_threads(threads)
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name
