"""The networks: shapes, gradients, seeding, dropout, weight transfer, checkpoints."""

import json

import pytest
import torch
from movierec import checkpoint, models
from schema_defaults import model_block

N_USERS, N_MOVIES = 13, 29

SETTINGS = {
    "mlp": {
        "arch": "mlp",
        "n_factors": 6,
        "hidden": [10, 8, 4],
        "dropouts": [0.5, 0.6, 0.7],
        "y_range": [0.5, 5.5],
        "seed": 3,
    },
    "dot": {"arch": "dot", "n_factors": 6, "y_range": [0.5, 5.5], "seed": 3},
    "hybrid": {"arch": "hybrid", "n_factors": 6, "y_range": None, "seed": 3},
}
SETTINGS = {arch: model_block(block) for arch, block in SETTINGS.items()}


def batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    user = torch.randint(0, N_USERS, (n,), generator=g)
    movie = torch.randint(0, N_MOVIES, (n,), generator=g)
    rating = torch.randint(1, 11, (n,), generator=g).float() / 2
    return user, movie, rating


@pytest.mark.parametrize("arch", list(SETTINGS))
def test_shapes_and_tables(arch):
    model = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES)
    user, movie, _ = batch()
    out = model(user, movie)
    assert out.shape == (32,)
    assert out.dtype == torch.float32
    assert isinstance(model.user_emb, torch.nn.Embedding)
    assert isinstance(model.movie_emb, torch.nn.Embedding)
    assert model.user_emb.weight.shape == (N_USERS, 6)
    assert model.movie_emb.weight.shape == (N_MOVIES, 6)
    if arch == "mlp":
        assert not hasattr(model, "user_bias")
    else:
        assert model.user_bias.weight.shape == (N_USERS, 1)
        assert model.movie_bias.weight.shape == (N_MOVIES, 1)


@pytest.mark.parametrize("arch", ["mlp", "dot"])
def test_y_range_bounds_predictions(arch):
    model = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES).eval()
    with torch.no_grad():
        model.user_emb.weight.mul_(1000)  # push scores far out
        model.movie_emb.weight.mul_(1000)
    out = model(*batch()[:2])
    assert out.min() >= 0.5 and out.max() <= 5.5


def test_unbounded_output_adds_offset():
    model = models.build_model(SETTINGS["hybrid"], N_USERS, N_MOVIES).eval()
    user, movie, _ = batch()
    before = model(user, movie)
    model.output.offset.fill_(3.5)
    assert torch.allclose(model(user, movie), before + 3.5)


def test_bounded_output_adds_offset_inside_the_sigmoid():
    model = models.build_model(SETTINGS["dot"], N_USERS, N_MOVIES).eval()
    user, movie, _ = batch()
    with torch.no_grad():
        model.user_bias.weight.normal_(0, 0.5)
        model.output.offset.fill_(0.7)
        expected = 0.5 + 5.0 * torch.sigmoid(model.score(user, movie) + 0.7)
        assert torch.allclose(model(user, movie), expected)


def zero_raw_score(model):
    """Zero what makes up a model's raw score: tables, biases, and the last linear layers."""
    with torch.no_grad():
        for name in ("user_emb", "movie_emb", "user_bias", "movie_bias"):
            if hasattr(model, name):
                getattr(model, name).weight.zero_()
        if hasattr(model, "linear"):  # the hybrid's linear head
            model.linear.weight.zero_()
            model.linear.bias.zero_()
        if hasattr(model, "layers"):  # the mlp's output layer
            model.layers[-1].weight.zero_()
            model.layers[-1].bias.zero_()


@pytest.mark.parametrize("arch", list(SETTINGS))
@pytest.mark.parametrize("y_range", [[0.5, 5.5], [1.0, 5.0], None])
@pytest.mark.parametrize("mean", [3.53, 1.2, 4.9])
def test_set_output_offset_makes_a_zero_score_predict_the_mean(arch, y_range, mean):
    """The cold-start fix: an untrained row (raw score 0) predicts the training mean."""
    model = models.build_model({**SETTINGS[arch], "y_range": y_range}, N_USERS, N_MOVIES).eval()
    zero_raw_score(model)
    user, movie, _ = batch()
    with torch.no_grad():
        before = model(user, movie)
        models.set_output_offset(model, mean)
        after = model(user, movie)
    if y_range is not None:
        # Without the offset a bounded model predicts the middle of its range.
        assert torch.allclose(before, torch.full_like(before, sum(y_range) / 2))
    assert torch.allclose(after, torch.full_like(after, mean), atol=1e-4)
    if arch == "hybrid":
        assert torch.allclose(model.heads(user, movie)[1], after, atol=1e-4)


def test_set_output_offset_stays_finite_at_the_bounds():
    model = models.build_model(SETTINGS["dot"], N_USERS, N_MOVIES).eval()
    zero_raw_score(model)
    user, movie, _ = batch()
    for mean, expected in ((5.5, 5.5), (0.5, 0.5), (9.0, 5.5)):
        models.set_output_offset(model, mean)
        assert torch.isfinite(model.output.offset)
        with torch.no_grad():
            assert torch.allclose(model(user, movie), torch.full((32,), expected), atol=1e-3)


def test_hybrid_has_both_heads_and_predicts_with_the_dot_head():
    model = models.build_model(SETTINGS["hybrid"], N_USERS, N_MOVIES).eval()
    user, movie, _ = batch()
    dot, linear = model.heads(user, movie)
    assert dot.shape == linear.shape == (32,)
    assert torch.equal(model(user, movie), dot)
    assert not torch.allclose(dot, linear)
    expected = (model.user_emb(user) * model.movie_emb(movie)).sum(1)
    expected += model.user_bias(user)[:, 0] + model.movie_bias(movie)[:, 0]
    assert torch.allclose(dot, expected)


@pytest.mark.parametrize("arch", list(SETTINGS))
def test_gradients_reach_every_parameter_and_only_used_rows(arch):
    model = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES).train()
    user, movie, rating = batch(16)
    if arch == "hybrid":
        dot, linear = model.heads(user, movie)
        loss = (dot - rating).square().mean() + 0.2 * (linear - rating).square().mean()
    else:
        loss = (model(user, movie) - rating).square().mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    used = torch.zeros(N_USERS, dtype=torch.bool)
    used[user] = True
    grad_rows = model.user_emb.weight.grad.abs().sum(1) > 0
    assert not (grad_rows & ~used).any()  # unused rows get no gradient
    if arch != "mlp":  # (dropout and ReLU can silence a used row of the mlp)
        assert torch.equal(grad_rows, used)


@pytest.mark.parametrize("arch", list(SETTINGS))
def test_seed_decides_the_initial_weights(arch):
    a = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES)
    b = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES)
    c = models.build_model({**SETTINGS[arch], "seed": 4}, N_USERS, N_MOVIES)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.user_emb.weight, c.user_emb.weight)


def test_notebook_mlp_architecture():
    settings = model_block(arch="mlp", n_factors=50, hidden=[100, 100, 50])
    settings["dropouts"] = [0.5, 0.6, 0.7]
    model = models.build_model(settings, 610, 9724)
    linears = [m for m in model.layers if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (100, 100),
        (100, 100),
        (100, 50),
        (50, 1),
    ]
    drops = [m.p for m in model.layers if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.5, 0.6, 0.7]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # What the schema cannot say (it checks arch, sizes and ranges itself).
        (model_block(arch="mlp", hidden=[4, 4], dropouts=[0.5]), "one dropout per hidden layer"),
        (model_block(arch="dot", y_range=[5, 1]), "high > low"),
        # A block the schema has not completed is refused, not defaulted a second time.
        ({"arch": "dot", "n_factors": 4}, "missing hidden, dropouts, loss_weights"),
        ({**model_block(arch="dot"), "lr": 0.1}, "unknown lr"),
    ],
)
def test_bad_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(settings, N_USERS, N_MOVIES)


def test_transfer_copies_embeddings_and_biases():
    hybrid = models.build_model(SETTINGS["hybrid"], N_USERS, N_MOVIES)
    with torch.no_grad():
        hybrid.user_bias.weight.normal_()
        hybrid.movie_bias.weight.normal_()
    dot = models.build_model({**SETTINGS["dot"], "seed": 9}, N_USERS, N_MOVIES)
    copied = models.transfer_embeddings(hybrid, dot)
    assert copied == ["user_emb", "movie_emb", "user_bias", "movie_bias"]
    for name in copied:
        assert torch.equal(getattr(dot, name).weight, getattr(hybrid, name).weight)


def test_transfer_from_mlp_keeps_zero_biases():
    mlp = models.build_model(SETTINGS["mlp"], N_USERS, N_MOVIES)
    dot = models.build_model(SETTINGS["dot"], N_USERS, N_MOVIES)
    assert models.transfer_embeddings(mlp, dot) == ["user_emb", "movie_emb"]
    assert torch.equal(dot.movie_emb.weight, mlp.movie_emb.weight)
    assert dot.movie_bias.weight.abs().sum() == 0


def test_transfer_refuses_other_shapes():
    mlp = models.build_model({**SETTINGS["mlp"], "n_factors": 4}, N_USERS, N_MOVIES)
    dot = models.build_model(SETTINGS["dot"], N_USERS, N_MOVIES)
    with pytest.raises(ValueError, match="same n_factors"):
        models.transfer_embeddings(mlp, dot)


@pytest.mark.parametrize("arch", list(SETTINGS))
def test_checkpoint_round_trip(tmp_path, arch):
    model = models.build_model(SETTINGS[arch], N_USERS, N_MOVIES).eval()
    with torch.no_grad():
        model.user_emb.weight.add_(1.0)  # differ from a fresh build
    models.set_output_offset(model, 3.5)  # the offset buffer travels in the state_dict
    meta = {
        "arch": arch,
        "settings": SETTINGS[arch],
        "n_users": N_USERS,
        "n_movies": N_MOVIES,
        "users": "results/x/data/users.parquet",
    }
    checkpoint.save_model(model, meta, tmp_path / "model.pt", tmp_path / "model.json")
    # model.pt is a plain state_dict: loads without unpickling code.
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    assert torch.equal(state["output.offset"], model.output.offset)
    loaded, loaded_meta = checkpoint.load_model(tmp_path / "model.pt")
    assert loaded_meta == json.loads((tmp_path / "model.json").read_text())
    assert not loaded.training
    user, movie, _ = batch()
    with torch.no_grad():
        assert torch.equal(loaded(user, movie), model(user, movie))


def test_load_model_needs_its_json(tmp_path):
    model = models.build_model(SETTINGS["dot"], N_USERS, N_MOVIES)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="model.json: missing"):
        checkpoint.load_model(tmp_path / "model.pt")
    meta = {"arch": "dot", "settings": {**SETTINGS["dot"], "n_factors": 7}}
    meta.update(n_users=N_USERS, n_movies=N_MOVIES)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit"):
        checkpoint.load_model(tmp_path / "model.pt")
