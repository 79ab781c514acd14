"""Hyperparameter sweeps: trials from a grid or a seeded random sample, and the choice.

A sweep (config ``sweeps:``) names a model and a search space over keys of its
block. Each trial is one set of values (``overrides``) laid over that block and
trained as its own cached job (rule train_trial), so that

* a trial's name is a hash of its overrides alone: adding a value to a grid, or
  raising ``n`` of a random sample, adds trials and leaves the others' files
  (and their params) exactly as they were, so only the new ones train;
* random trial ``i`` is drawn from its own generator seeded by ``(seed, i)``,
  so the sample is deterministic for a seed and growing ``n`` keeps the first
  trials.

`choose` picks the winner by validation RMSE only; rule score_sweep then reads
the test part for that one checkpoint. A trial that diverges is recorded as
failed (rule train_trial does not fail) and is never chosen.
"""

import copy
import hashlib
import itertools
import json
import math

import numpy as np

#: Significant digits a sampled number keeps (a hyperparameter needs no more,
#: and the value reads the same in trials.csv, the trial's params and its name).
SAMPLE_DIGITS = 4
#: Keys a sweep may not change: the architecture and the pretrain edge are the
#: model's identity (sweep the pretrain model's own block instead).
FIXED_KEYS = ("arch", "pretrain", "init_from")


def _round(value, digits=SAMPLE_DIGITS):
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def grid_trials(grid):
    """Every combination of a ``{key: [values]}`` grid, in the grid's key order."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def draw(distribution, rng):
    """One value of a ``{log_uniform|uniform|int_uniform: [low, high]}`` or ``{choice: [...]}``."""
    (kind, arg), *rest = distribution.items()
    if rest:
        raise ValueError(f"a distribution has exactly one kind, got {sorted(distribution)}")
    if kind == "choice":
        return copy.deepcopy(arg[int(rng.integers(len(arg)))])
    low, high = arg
    if kind == "uniform":
        return _round(rng.uniform(low, high))
    if kind == "log_uniform":
        return _round(math.exp(rng.uniform(math.log(low), math.log(high))))
    if kind == "int_uniform":
        return int(rng.integers(low, high + 1))
    raise ValueError(
        f"unknown distribution {kind!r}; expected log_uniform, uniform, int_uniform or choice"
    )


def random_trials(n, seed, space):
    """``n`` seeded draws from ``space``; trial i depends on (seed, i) only."""
    trials = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        trials.append({key: draw(dist, rng) for key, dist in space.items()})
    return trials


def sweep_trials(sweep):
    """The overrides of every trial of a sweep block, duplicates dropped (first kept)."""
    if "grid" in sweep:
        trials = grid_trials(sweep["grid"])
    else:
        spec = sweep["random"]
        trials = random_trials(spec["n"], spec.get("seed", 0), spec["space"])
    unique = {}
    for overrides in trials:
        unique.setdefault(trial_name(overrides), overrides)
    return unique


def cell(value):
    """A swept value as a table cell: scalars as they are, lists and mappings as JSON."""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return value


def trial_name(overrides):
    """``t`` + 10 hex digits of the canonical JSON of the overrides (their order is irrelevant)."""
    text = json.dumps(overrides, sort_keys=True, separators=(",", ":"))
    return "t" + hashlib.sha256(text.encode()).hexdigest()[:10]


def apply_overrides(settings, overrides):
    """A copy of a model block with dotted keys (``loss_weights.linear``) set."""
    out = copy.deepcopy(settings)
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key}: {part} is not a mapping in the model's block")
        node[last] = copy.deepcopy(value)
    return out


def check_keys(name, sweep, model_properties):
    """Every swept key names a setting of the model's block (and not a fixed one)."""
    keys = sweep["grid"] if "grid" in sweep else sweep["random"]["space"]
    for key in keys:
        top = key.split(".")[0]
        if top in FIXED_KEYS:
            raise ValueError(
                f"sweeps.{name}: {key!r} cannot be swept ({', '.join(FIXED_KEYS)} are the "
                "model's identity); sweep another model block instead"
            )
        if top not in model_properties:
            known = ", ".join(k for k in model_properties if k not in FIXED_KEYS)
            raise ValueError(
                f"sweeps.{name}: {key!r} is not a setting of models.{sweep['model']}; "
                f"known settings: {known}"
            )


def choose(results):
    """The winning trial: the lowest validation RMSE among trials that finished.

    `results` maps trial name -> trial.json contents. Ties go to the name that
    sorts first, so the choice does not depend on the order trials finished in.
    The test part plays no role here (it is not an argument).
    """
    finished = [
        (r["val_rmse"], name)
        for name, r in results.items()
        if r["status"] == "ok" and math.isfinite(r["val_rmse"])
    ]
    if not finished:
        failed = "; ".join(f"{n}: {r.get('error')}" for n, r in sorted(results.items()))
        raise ValueError(f"every trial of the sweep failed, so none can be chosen ({failed})")
    return min(finished)[1]
