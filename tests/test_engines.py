"""The two training engines: the fast one's parts, and that it equals the reference."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from movierec import models, training
from movierec.training import fast
from movierec.training.fast import dropout, private
from movierec.training.fast.dense_adam import DenseAdam
from movierec.training.fast.dot_step import DotStep
from movierec.training.fast.row_adam import RowAdam
from test_training import SMALL, low_rank, split

HYBRID_WEIGHTS = {"linear": 0.3, "dot": 0.9}

# --- fast == reference -----------------------------------------------------------------


def _settings(arch, y_range):
    settings = {**SMALL[arch], "y_range": y_range}
    if arch == "mlp":
        settings["dropouts"] = [0.0, 0.0]  # the engines draw dropout masks differently
    return settings


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("y_range", [[0.5, 5.5], None])
@pytest.mark.parametrize("arch", ["dot", "hybrid", "mlp"])
def test_fast_engine_equals_the_reference_engine(arch, y_range, workers, monkeypatch):
    """Parameters after 26 steps (weight decay on) agree to float rounding."""
    monkeypatch.setattr(fast, "CPU_CHUNK", 64)  # several chunks, and workers, per batch
    monkeypatch.setattr(fast, "MIN_WORKER_PART", 64)
    train, val = split(low_rank(n_ratings=4000))
    kwargs = dict(
        phases=[{"lr": 0.02, "epochs": 1}, {"lr": 0.005, "epochs": 1}],
        batch_size=256,
        rating_scale=(0.5, 5.0),
        weight_decay=0.1,
        loss_weights=HYBRID_WEIGHTS,
        seed=3,
    )
    threads = torch.get_num_threads()
    runs = {}
    try:
        torch.set_num_threads(workers)
        probe = fast.make_engine(
            models.build_model(_settings(arch, y_range), 60, 80),
            weight_decay=0.1, loss_weights=HYBRID_WEIGHTS, batch_size=256,
            device=torch.device("cpu"), seed=3,
        )  # fmt: skip
        assert probe.pool.n == workers
        probe.finish()
        for engine in ("fast", "reference"):
            model = models.build_model(_settings(arch, y_range), 60, 80)
            runs[engine] = model, training.fit(model, train, val, engine=engine, **kwargs)
    finally:
        torch.set_num_threads(threads)
    (fast_model, fast_run), (ref_model, ref_run) = runs["fast"], runs["reference"]
    assert fast_run["engine"].startswith("fast-") and ref_run["engine"] == "reference"
    assert [e["val_rmse"] for e in fast_run["history"]] == pytest.approx(
        [e["val_rmse"] for e in ref_run["history"]], abs=1e-6
    )
    reference = ref_model.state_dict()
    for name, value in fast_model.state_dict().items():
        assert torch.allclose(value, reference[name], rtol=1e-5, atol=1e-6), name
    # Both leave the module as they found it: dense embedding gradients, no stray grads.
    for model in (fast_model, ref_model):
        assert not any(m.sparse for m in model.modules() if isinstance(m, torch.nn.Embedding))
        assert all(p.grad is None for p in model.parameters())


def test_an_unknown_engine_is_a_clear_error():
    train, val = split(low_rank())
    model = models.build_model(SMALL["dot"], 60, 80)
    with pytest.raises(ValueError, match="engine must be one of fast, reference"):
        training.fit(
            model, train, val, phases=[{"lr": 0.01, "epochs": 1}], batch_size=100,
            rating_scale=(0.5, 5.0), engine="turbo",
        )  # fmt: skip


# --- the fused dot step ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ["dot", "hybrid"])
@pytest.mark.parametrize("y_range", [[0.5, 5.5], None])
def test_fused_gradient_equals_autograd(arch, y_range):
    ratings = low_rank()
    model = models.build_model({**SMALL[arch], "y_range": y_range}, 60, 80)
    with torch.no_grad():
        model.user_bias.weight.normal_(0, 0.3)
        model.movie_bias.weight.normal_(0, 0.3)
    # What fit sets: inside the sigmoid when bounded (logit(0.62), about 0.49), else 3.6.
    models.set_output_offset(model, 3.6)
    assert float(model.output.offset) != 0.0
    u, m, r = (t[:700] for t in ratings)
    step = DotStep(model, weight_decay=0.0, chunk=256, loss_weights=HYBRID_WEIGHTS)
    sse = step.accumulate(u, m, r)  # 3 chunks, the last one short
    if arch == "hybrid":
        pred, linear = model.heads(u, m)
        loss = 0.9 * (pred - r).square().mean() + 0.3 * (linear - r).square().mean()
    else:
        pred = model(u, m)
        loss = (pred - r).square().mean()
    loss.backward()
    f = 4
    # Compact accumulators: row i of a table's is the batch's i-th distinct row.
    users, movies = step.user_opt.rows, step.movie_opt.rows
    assert users.tolist() == sorted(set(u.tolist())) and movies.tolist() == sorted(set(m.tolist()))
    user_grad, movie_grad = step.user_opt.grads[0], step.movie_opt.grads[0]
    assert torch.allclose(user_grad[:, :f], model.user_emb.weight.grad[users], atol=1e-6)
    assert torch.allclose(user_grad[:, f : f + 1], model.user_bias.weight.grad[users], atol=1e-6)
    assert torch.allclose(movie_grad[:, :f], model.movie_emb.weight.grad[movies], atol=1e-6)
    assert torch.allclose(movie_grad[:, f + 1 :], model.movie_bias.weight.grad[movies], atol=1e-6)
    assert model.user_emb.weight.grad[~torch.isin(torch.arange(60), users)].abs().sum() == 0
    assert sse.item() == pytest.approx(((pred - r) ** 2).sum().item(), rel=1e-5)
    if arch == "hybrid":
        head = step.linear_grads[0]
        weight_grad = model.linear.weight.grad[0]
        assert torch.allclose(head[0, :f], weight_grad[:f], atol=1e-6)
        assert torch.allclose(head[1, :f], weight_grad[f:], atol=1e-6)
        assert step.linear_bias_grads[0].item() == pytest.approx(
            model.linear.bias.grad.item(), abs=1e-6
        )
    step.finish()


# --- row-wise Adam and its fused kernel ---------------------------------------------------


def test_row_l2_is_the_per_use_penalty():
    """RowAdam's gradient = autograd of MSE + wd * sum over uses of |row|^2 / B."""
    torch.manual_seed(0)
    table = torch.randn(10, 3)
    index = torch.tensor([1, 1, 4, 7, 7, 7, 2])
    data_grad = torch.randn(7, 3)
    wd = 0.3
    opt = RowAdam(table.clone(), weight_decay=wd, accumulators=2)
    positions = opt.begin_batch(index)
    opt.accumulate(positions[:3], data_grad[:3], acc=0)
    opt.accumulate(positions[3:], data_grad[3:], acc=1)
    rows = opt.rows
    got = opt.gradient(0, len(rows), table[rows], batch_size=7)
    leaf = table.clone().requires_grad_()
    used = leaf[index]
    loss = (used * data_grad).sum() + wd * used.square().sum() / 7
    loss.backward()
    assert rows.tolist() == [1, 2, 4, 7] and opt.uses.tolist() == [2, 1, 1, 3]
    assert torch.allclose(got, leaf.grad[rows], atol=1e-6)
    assert [part for part in opt.parts(3)] == [(0, 1), (1, 3), (3, 4)]


def test_row_adam_touches_only_used_rows_and_freezes_columns():
    table = torch.ones(6, 3)
    opt = RowAdam(table, weight_decay=0.1, frozen_columns=[2])
    index = torch.tensor([0, 3, 3])
    opt.step(index, torch.ones(3, 3), lr=0.1, batch_size=3)
    changed = (table != 1).any(1)
    assert changed.tolist() == [True, False, False, True, False, False]
    assert (table[:, 2] == 1).all()


def test_row_adam_equals_sparse_adam():
    """Three steps on repeated rows: RowAdam and torch.optim.SparseAdam agree."""
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(8, 3, generator=generator)
    table = torch.nn.Embedding(8, 3, sparse=True)
    table.weight.data.copy_(start)
    sparse_adam = torch.optim.SparseAdam(table.parameters(), lr=0.05)
    rows = RowAdam(start.clone())
    for _ in range(3):
        index = torch.randint(8, (6,), generator=generator)
        grad = torch.randn(6, 3, generator=generator) * 1e-3  # small: eps matters
        sparse_adam.zero_grad()
        (table(index) * grad).sum().backward()
        sparse_adam.step()
        rows.step(index, grad, lr=0.05, batch_size=6)
    assert torch.allclose(rows.table, table.weight.detach(), rtol=1e-6, atol=1e-7)


def test_dense_adam_equals_torch_adam():
    """Three steps with changing lr on two tensors: DenseAdam and torch.optim.Adam agree."""
    generator = torch.Generator().manual_seed(2)
    start = [torch.randn(4, 3, generator=generator), torch.randn(3, generator=generator)]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    adam = torch.optim.Adam(theirs, lr=0.01)
    ours = DenseAdam([t.clone() for t in start])
    for lr in (0.01, 0.03, 0.003):
        grads = [torch.randn(t.shape, generator=generator) * 1e-3 for t in start]
        for param, grad in zip(theirs, grads, strict=True):
            param.grad = grad.clone()
        for group in adam.param_groups:
            group["lr"] = lr
        adam.step()
        ours.step(grads, lr)
    for mine, param in zip(ours.params, theirs, strict=True):
        assert torch.allclose(mine, param.detach(), rtol=1e-6, atol=1e-7)


def test_the_fast_engine_trains_without_torch_dynamo():
    """No torch.optim in the fast engine: building one imports torch._dynamo, a second a job."""
    code = """
import json, sys, torch
from movierec import models
from movierec.training import Ratings, fit
n = 64
data = Ratings(torch.arange(n) % 60, torch.arange(n) % 80, torch.full((n,), 3.5))
for settings in json.loads(sys.argv[1]):
    model = models.build_model(settings, 60, 80)
    fit(model, data, data, phases=[{"lr": 0.01, "epochs": 1}], batch_size=16,
        rating_scale=(0.5, 5.0), loss_weights={"linear": 0.2, "dot": 1.0}, engine="fast")
print(sorted(name for name in ("torch._dynamo", "pandas") if name in sys.modules))
"""
    blocks = json.dumps([SMALL[arch] for arch in ("dot", "hybrid", "mlp")])
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    env = {**os.environ, "PYTHONPATH": str(scripts)}
    out = subprocess.run(
        [sys.executable, "-c", code, blocks], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_fused_adam_kernel_passes_its_self_check():
    private.fused_adam_kernel.cache_clear()
    assert private.fused_adam_kernel("cpu") is torch._fused_adam_


@pytest.mark.parametrize("broken", ["wrong", "raises", "missing"])
def test_a_fused_kernel_that_fails_its_self_check_falls_back_to_eager(broken, monkeypatch, caplog):
    def wrong(params, *args, **kwargs):  # a kernel that silently does nothing
        pass

    def raises(*args, **kwargs):
        raise TypeError("unexpected keyword argument 'beta1'")

    if broken == "missing":
        monkeypatch.delattr(torch, "_fused_adam_")
    else:
        monkeypatch.setattr(torch, "_fused_adam_", wrong if broken == "wrong" else raises)
    private.fused_adam_kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=private.__name__):
            assert private.fused_adam_kernel("cpu") is None
        assert "using eager Adam" in caplog.text
        # The fast engine still trains, by the eager arithmetic.
        weights, grad = torch.ones(2, 2), torch.full((2, 2), 0.5)
        exp_avg, exp_avg_sq = torch.zeros(2, 2), torch.zeros(2, 2)
        private.adam_update(weights, grad, exp_avg, exp_avg_sq, 1, 0.1, (0.9, 0.999), 1e-8)
        assert torch.allclose(weights, torch.full((2, 2), 0.9))
    finally:
        private.fused_adam_kernel.cache_clear()


# --- pooled dropout ---------------------------------------------------------------------


def test_pooled_dropout_matches_dropout_statistics():
    drop = dropout.PooledDropout(0.6, width=50, pool_rows=4096)
    x = torch.ones(20000, 50)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    drop.refresh(torch.Generator().manual_seed(0))
    out = drop(x)
    zero = (out == 0).float().mean().item()
    assert abs(zero - 0.6) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02  # inverted dropout keeps the mean
    assert torch.unique(out).tolist() == pytest.approx([0.0, 1 / 0.4])
    # Rows of the batch draw different masks, and a new pool gives new masks.
    assert not torch.equal(out[0], out[1]) or not torch.equal(out[1], out[2])
    first_pool = drop.pool.clone()
    drop.refresh(torch.Generator().manual_seed(1))
    assert not torch.equal(first_pool, drop.pool)


def test_the_fast_engine_pools_dropout_while_it_trains_only():
    """Pooled while training; afterwards the model holds its own nn.Dropout modules."""
    model = models.build_model(SMALL["mlp"], 60, 80)
    originals = [m for m in model.layers if isinstance(m, torch.nn.Dropout)]
    swaps = dropout.pooled_dropouts(model)
    pooled = [m for m in model.layers if isinstance(m, dropout.PooledDropout)]
    assert [(p.p, p.width) for p in pooled] == [(0.3, 8), (0.2, 8)]
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.layers)
    dropout.restore(swaps)
    assert [m for m in model.layers if isinstance(m, torch.nn.Dropout)] == originals
    train, val = split(low_rank())
    training.fit(
        model, train, val, phases=[{"lr": 0.01, "epochs": 1}], batch_size=500,
        rating_scale=(0.5, 5.0),
    )  # fmt: skip
    assert [m for m in model.layers if isinstance(m, torch.nn.Dropout)] == originals
