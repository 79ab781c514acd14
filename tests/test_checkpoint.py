"""checkpoint.load_model on broken files: one clear error naming the file and the fix.

Each case starts from a real small checkpoint written by `save_model`, then
damages model.pt or model.json the way a full disk, a killed job or a copy
gone wrong would.
"""

import json
import os
import pickle
import traceback
from collections import OrderedDict

import pytest
import torch
from movierec import checkpoint, models
from schema_defaults import model_block

SETTINGS = model_block(arch="dot", n_factors=4, y_range=None, seed=1)
N_USERS, N_MOVIES = 5, 7


class NotATensor:
    """A picklable object that a tensors-only load must refuse."""


@pytest.fixture
def saved(tmp_path):
    """A good model.pt and model.json, as the training rule writes them."""
    model = models.build_model(SETTINGS, N_USERS, N_MOVIES)
    meta = {"arch": "dot", "settings": SETTINGS, "n_users": N_USERS, "n_movies": N_MOVIES}
    model_pt = tmp_path / "rep0" / "model.pt"
    model_pt.parent.mkdir()
    checkpoint.save_model(model, meta, model_pt)
    return model_pt


def load_error(model_pt, damaged):
    """The message load_model raises; checks what every such message must say."""
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load_model(model_pt)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert message.startswith(f"{damaged}: "), message
    assert f"snakemake --forcerun train_model {model_pt}" in message
    assert f"delete {model_pt}" in message
    assert "weights_only" not in message
    # Nor does the traceback a rule log would show: torch's advice is not chained in.
    shown = "".join(traceback.format_exception(err.value))
    assert "weights_only=False" not in shown and "set to `False`" not in shown
    return message


def test_good_checkpoint_loads(saved):
    model, meta = checkpoint.load_model(saved)
    assert meta["n_users"] == N_USERS and not model.training


def test_truncated_model_pt(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    assert "truncated or damaged" in load_error(saved, saved)


def test_empty_model_pt(saved):
    saved.write_bytes(b"")
    assert "empty" in load_error(saved, saved)


def test_random_bytes_model_pt(saved):
    saved.write_bytes(os.urandom(3000))
    assert "not a PyTorch checkpoint" in load_error(saved, saved)


def test_model_pt_with_a_pickled_object(saved):
    """A torch.save of something other than tensors: refused, not unpickled."""
    state = OrderedDict(torch.load(saved, weights_only=True))
    state["extra"] = NotATensor()
    torch.save(state, saved)
    message = load_error(saved, saved)
    assert "contains objects other than tensors" in message
    assert "NotATensor" in message


def test_model_pt_with_a_plain_value(saved):
    """Loadable tensors-only, but a number among the weights is not a state_dict either."""
    state = torch.load(saved, weights_only=True)
    torch.save({**state, "epoch": 3}, saved)
    assert "contains objects other than tensors ('epoch' is a int)" in load_error(saved, saved)


def test_raw_pickle_model_pt(saved):
    saved.write_bytes(pickle.dumps({"user_emb.weight": [1, 2]}, protocol=2))
    assert "not a PyTorch checkpoint" in load_error(saved, saved)


def test_missing_model_pt(saved):
    saved.unlink()
    assert ": missing" in load_error(saved, saved)


def test_truncated_model_json(saved):
    meta = checkpoint.meta_path(saved)
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    message = load_error(saved, meta)
    assert "not valid JSON" in message and "truncated?" in message


def test_invalid_model_json(saved):
    meta = checkpoint.meta_path(saved)
    meta.write_text("arch: dot\n")
    message = load_error(saved, meta)
    assert "not valid JSON (Expecting value at line 1 column 1)" in message


def test_binary_model_json(saved):
    meta = checkpoint.meta_path(saved)
    meta.write_bytes(b"\xff\xfe\x00garbage")
    assert "not valid JSON" in load_error(saved, meta)


def test_model_json_not_an_object(saved):
    meta = checkpoint.meta_path(saved)
    meta.write_text("[1, 2]\n")
    assert "holds a JSON list, not an object" in load_error(saved, meta)


def test_model_json_missing_keys(saved):
    meta = checkpoint.meta_path(saved)
    content = json.loads(meta.read_text())
    del content["settings"], content["n_movies"]
    meta.write_text(json.dumps(content))
    assert "lacks settings, n_movies" in load_error(saved, meta)


def test_missing_model_json(saved):
    meta = checkpoint.meta_path(saved)
    meta.unlink()
    assert f"missing; it describes the model stored in {saved}" in load_error(saved, meta)


def test_weights_that_do_not_fit(saved):
    meta = checkpoint.meta_path(saved)
    content = json.loads(meta.read_text())
    content["n_users"] = N_USERS + 1
    meta.write_text(json.dumps(content))
    assert "weights do not fit the dot model" in load_error(saved, saved)


def test_pretrained_checkpoint_names_its_rule(tmp_path):
    """A broken pretrain/model.pt points at the rule that writes it."""
    model_pt = tmp_path / "pretrain" / "model.pt"
    model_pt.parent.mkdir()
    model_pt.write_bytes(b"")
    checkpoint.meta_path(model_pt).write_text(
        json.dumps({"arch": "dot", "settings": SETTINGS, "n_users": 5, "n_movies": 7})
    )
    with pytest.raises(checkpoint.CheckpointError, match="--forcerun pretrain_model"):
        checkpoint.load_model(model_pt)
