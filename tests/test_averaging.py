"""Iterate averaging (`average_from`): the kept model is the mean of the epochs' weights."""

import pytest
import torch
from movierec.training import loop
from movierec.training.averaging import WeightAverage
from test_training import SMALL, low_rank, small_fit, split

PHASES = [{"lr": 0.05, "epochs": 6}]


def test_the_mean_is_of_what_was_added_and_the_weights_come_back():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model)
    before = model.weight.detach().clone()
    with average.swapped_in():  # nothing added yet: the model as it is
        assert torch.equal(model.weight, before)
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
            model.bias.fill_(-value)
        average.add()
    with average.swapped_in():
        assert torch.allclose(model.weight, torch.full((2, 3), 3.0))
        assert torch.allclose(model.bias, torch.full((2,), -3.0))
    assert torch.equal(model.weight, torch.full((2, 3), 6.0))  # its own weights again


def _epoch_weights(monkeypatch, arch, engine, train, val):
    """Each epoch's own weights of a run without averaging (as validation sees them)."""
    snapshots = []
    evaluate = loop.evaluate

    def recording(model, *args, **kwargs):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", recording)
    _, metrics = small_fit(arch, train, val, engine=engine, phases=PHASES)
    monkeypatch.setattr(loop, "evaluate", evaluate)
    return snapshots, metrics


@pytest.mark.parametrize(
    ("arch", "engine"), [("dot", "fast"), ("dot", "reference"), ("hybrid", "fast")]
)
def test_kept_weights_are_the_mean_of_the_epochs_from_average_from(monkeypatch, arch, engine):
    """Same seed with and without averaging: training is untouched (same train_mse each
    epoch), and the kept weights are the mean of epochs average_from..kept epoch."""
    train, val = split(low_rank())
    snapshots, plain = _epoch_weights(monkeypatch, arch, engine, train, val)
    model, averaged = small_fit(arch, train, val, engine=engine, phases=PHASES, average_from=3)
    assert [e["train_mse"] for e in averaged["history"]] == [
        e["train_mse"] for e in plain["history"]
    ]
    assert [e["averaged_epochs"] for e in averaged["history"]] == [0, 0, 1, 2, 3, 4]
    # Before average_from, validation saw the epoch's own weights.
    assert averaged["history"][1]["val_rmse"] == plain["history"][1]["val_rmse"]
    kept = averaged["best_epoch"]
    assert kept >= 3, "this data still improves at the end, so the kept epoch is averaged"
    for name, value in model.state_dict().items():
        if not value.is_floating_point():
            continue
        mean = torch.stack([s[name] for s in snapshots[2:kept]]).mean(0)
        torch.testing.assert_close(value, mean, rtol=1e-5, atol=1e-6, msg=name)


def test_average_from_is_read_from_the_model_block():
    """The typed settings carry the block's average_from (the schema's default: off).
    That train_model passes it to fit is shown on the default run, in
    tests/test_report_workflow.py::test_averaged_models_keep_the_mean_of_their_epochs."""
    from movierec.settings import ModelSettings

    assert ModelSettings.from_block(dict(SMALL["dot"], average_from=2)).average_from == 2
    assert ModelSettings.from_block(SMALL["dot"]).average_from is None


@pytest.mark.parametrize("average_from", [0, 7])
def test_an_average_from_outside_the_schedule_is_an_error(average_from):
    """With 6 epochs, averaging from epoch 7 would silently average nothing."""
    train, val = split(low_rank())
    with pytest.raises(ValueError, match=rf"average_from {average_from} is outside .* 1-6"):
        small_fit("dot", train, val, phases=PHASES, average_from=average_from)
