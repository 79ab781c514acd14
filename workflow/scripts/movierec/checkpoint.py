"""Save and load trained models: ``model.pt`` (a state_dict) plus ``model.json``.

``model.pt`` holds tensors only, so it loads with ``torch.load(...,
weights_only=True)`` (no pickled code runs). ``model.json`` beside it says how
to rebuild the module (``arch`` and the settings block), the table sizes
(``n_users``, ``n_movies``) and which id maps the rows refer to (``users``,
``movies``: the index Parquet files), so "embedding of movieId 1" is one
lookup away.
"""

import json
import logging
from pathlib import Path

import torch

from movierec import atomic, models

log = logging.getLogger(__name__)

#: Keys model.json must have for `load_model` to rebuild the module.
REQUIRED_META = ("arch", "settings", "n_users", "n_movies")


def meta_path(model_pt):
    """The ``model.json`` beside a ``model.pt``."""
    return Path(model_pt).with_name("model.json")


def save_model(model, meta, model_pt, model_json=None):
    """Write the module's state_dict (on CPU) and its JSON description, atomically.

    Parameters
    ----------
    model : torch.nn.Module
    meta : dict
        At least `REQUIRED_META`; JSON-serialisable.
    model_pt, model_json : path
        ``model_json`` defaults to ``model.json`` beside ``model_pt``; `load_model`
        looks for it there.
    """
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"model metadata lacks {', '.join(missing)}")
    model_json = meta_path(model_pt) if model_json is None else Path(model_json)
    if model_json != meta_path(model_pt):
        raise ValueError(
            f"{model_json}: the metadata must sit beside {model_pt} as model.json, "
            "where load_model looks for it"
        )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic.atomic_path(model_pt) as tmp:
        torch.save(state, tmp)
    atomic.write_json(model_json, meta)


def load_model(model_pt):
    """Rebuild a trained module from ``model.pt`` and the ``model.json`` beside it.

    Returns
    -------
    (torch.nn.Module, dict)
        The module in eval mode on CPU, and the metadata.

    Raises
    ------
    ValueError
        If model.json is missing or incomplete, or the weights do not fit
        the architecture it describes.
    """
    model_pt = Path(model_pt)
    json_path = meta_path(model_pt)
    if not json_path.is_file():
        raise ValueError(f"{json_path}: missing; it describes the model stored in {model_pt}")
    meta = json.loads(json_path.read_text())
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{json_path}: lacks {', '.join(missing)}")
    model = models.build_model(meta["settings"], meta["n_users"], meta["n_movies"])
    state = torch.load(model_pt, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{model_pt}: weights do not fit the {meta['arch']} model described in "
            f"{json_path}: {err}"
        ) from err
    model.eval()
    return model, meta
