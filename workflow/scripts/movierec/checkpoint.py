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
import os
import pickle
import re
from pathlib import Path

import torch

from movierec import atomic, models

log = logging.getLogger(__name__)

#: Keys model.json must have for `load_model` to rebuild the module.
REQUIRED_META = ("arch", "settings", "n_users", "n_movies")

_ZIP_MAGIC = b"PK\x03\x04"  # what every file torch.save writes starts with
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # the class a weights-only load refused


class CheckpointError(ValueError):
    """A ``model.pt`` or ``model.json`` that cannot be loaded; the message says how to rebuild."""


def _rebuild_hint(model_pt):
    """How to get a good checkpoint back: rerun the job that trained it."""
    rule = "pretrain_model" if model_pt.parent.name == "pretrain" else "train_model"
    return (
        f"rerun the {rule} rule to rebuild it: snakemake --forcerun {rule} {model_pt} "
        f"(or delete {model_pt} and rerun snakemake)"
    )


def _broken(path, problem, model_pt):
    return CheckpointError(f"{path}: {problem}; {_rebuild_hint(model_pt)}")


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
    CheckpointError
        A ValueError naming the file and what is wrong with it (missing,
        empty or truncated, not a checkpoint, holding objects other than
        tensors, not valid JSON, lacking keys, weights that do not fit the
        architecture), with the command that rebuilds it.
    """
    model_pt = Path(model_pt)
    meta = _load_meta(model_pt)
    json_path = meta_path(model_pt)
    try:
        model = models.build_model(meta["settings"], meta["n_users"], meta["n_movies"])
    except (ValueError, TypeError, AttributeError) as err:
        raise _broken(
            json_path, f"describes a model that cannot be built ({err})", model_pt
        ) from None
    state = _load_state(model_pt)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise _broken(
            model_pt,
            f"weights do not fit the {meta['arch']} model described in {json_path}: {err}",
            model_pt,
        ) from None
    model.eval()
    return model, meta


def _load_meta(model_pt):
    """The parsed ``model.json`` beside `model_pt`, checked for `REQUIRED_META`."""
    json_path = meta_path(model_pt)
    if not json_path.is_file():
        raise _broken(json_path, f"missing; it describes the model stored in {model_pt}", model_pt)
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _broken(json_path, "not valid JSON (not even text)", model_pt) from None
    except json.JSONDecodeError as err:
        problem = f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno}"
        # A file cut short ends in the middle of a value, or of a string.
        cut = err.pos >= len(err.doc.rstrip()) or err.msg.startswith("Unterminated string")
        problem += "; truncated?)" if cut else ")"
        raise _broken(json_path, problem, model_pt) from None
    if not isinstance(meta, dict):
        raise _broken(json_path, f"holds a JSON {type(meta).__name__}, not an object", model_pt)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise _broken(json_path, f"lacks {', '.join(missing)}", model_pt)
    return meta


def _load_state(model_pt):
    """The state_dict in `model_pt`, loaded tensors-only; a clear error for a broken file.

    torch's own messages for these cases are about zip internals, pickle
    opcodes or loading options; ours say what is wrong with the file.
    """
    if not model_pt.is_file():
        raise _broken(model_pt, "missing", model_pt)
    with open(model_pt, "rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if not head:
        raise _broken(model_pt, "empty (the save was cut short)", model_pt)
    try:
        state = torch.load(model_pt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if head == _ZIP_MAGIC and found:
            raise _broken(
                model_pt,
                f"contains objects other than tensors (a {found.group(1)}), "
                "so it is not a state_dict this workflow saved",
                model_pt,
            ) from None
        raise _broken(model_pt, _not_loadable(head), model_pt) from None
    except Exception:  # zip reader, EOF and pickle errors of a damaged file
        raise _broken(model_pt, _not_loadable(head), model_pt) from None
    if not isinstance(state, dict):
        raise _broken(
            model_pt, f"holds a {type(state).__name__}, not a state_dict of tensors", model_pt
        )
    other = {k: type(v).__name__ for k, v in state.items() if not isinstance(v, torch.Tensor)}
    if other:
        key, kind = next(iter(other.items()))
        raise _broken(
            model_pt,
            f"contains objects other than tensors ({key!r} is a {kind}), "
            "so it is not a state_dict this workflow saved",
            model_pt,
        )
    return state


def _not_loadable(head):
    """What a file that torch cannot read at all most likely is, from its first bytes."""
    if head == _ZIP_MAGIC:
        return "truncated or damaged (its archive is incomplete)"
    return "not a PyTorch checkpoint (a file torch.save writes starts with a zip header)"


def init_path(init):
    """A rule's ``input.init`` as one path or None: it comes as a path, [] or [path]."""
    if init is None or isinstance(init, str | os.PathLike):
        return init or None
    return next(iter(init), None)
