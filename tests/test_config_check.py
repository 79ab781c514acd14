"""Misspelt config keys and non-finite numbers fail before any rule, saying where and what."""

import copy
import json

import pytest
import yaml
from conftest import REPO
from movierec.config_check import check_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def merged(base, override):
    """`override` over `base` key by key, as Snakemake merges --configfile (lists replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def layered(*paths):
    config = CONFIG
    for path in paths:
        config = merged(config, yaml.safe_load((REPO / path).read_text()))
    return config


def schema_validate(config):
    """Snakemake's own schema check (it fills defaults in, so on a copy)."""
    validate(copy.deepcopy(config), str(SCHEMA_PATH))


def fresh():
    """A copy of CONFIG whose YAML anchors no longer share blocks, so an edit lands once."""
    return json.loads(json.dumps(CONFIG))


def with_key(parent, old, new, value=None):
    """CONFIG with key `old` under `parent` renamed to `new` (or `new` added when old is None)."""
    config = fresh()
    block = config
    for part in parent:
        block = block[part]
    if old is not None:
        value = block.pop(old)
    block[new] = value
    return config


def problems(config):
    with pytest.raises(ValueError) as caught:
        check_config(config, SCHEMA)
    return str(caught.value).splitlines()


@pytest.mark.parametrize(
    "configfiles",
    [
        (),
        ("tests/config/fast.yaml",),
        ("tests/config/fast.yaml", "tests/config/slurm.yaml"),
        ("config/notebook-2017.yaml",),
    ],
    ids=["config.yaml", "fast", "fast+slurm", "notebook-2017"],
)
def test_shipped_configs_pass_both_checks(configfiles):
    config = layered(*configfiles)
    check_config(config, SCHEMA)
    schema_validate(config)


TYPOS = {
    # id: (parent, key replaced (None: added), misspelt key, value, expected message)
    "batchsize": (
        ("models", "dot"),
        "batch_size",
        "batchsize",
        None,
        "unknown config key 'batchsize' at models.dot (did you mean 'batch_size'?)",
    ),
    "weight_decy": (
        ("models", "dot"),
        "weight_decay",
        "weight_decy",
        None,
        "unknown config key 'weight_decy' at models.dot (did you mean 'weight_decay'?)",
    ),
    "phase": (
        ("models", "dot"),
        "phases",
        "phase",
        None,
        "unknown config key 'phase' at models.dot (did you mean 'phases'?)",
    ),
    "splt": (
        (),
        "split",
        "splt",
        None,
        "unknown config key 'splt' at the top level (did you mean 'split'?)",
    ),
    "val_frac": (
        ("splits", "random"),
        "val_fraction",
        "val_frac",
        None,
        "unknown config key 'val_frac' at splits.random (did you mean 'val_fraction'?)",
    ),
    "replicate": (
        (),
        "replicates",
        "replicate",
        None,
        "unknown config key 'replicate' at the top level (did you mean 'replicates'?)",
    ),
    "another method's key": (
        ("splits", "random"),
        None,
        "k",
        5,
        "unknown config key 'k' at splits.random "
        "(known: method, seed, val_fraction, test_fraction)",
    ),
    "folds": (
        ("splits", "cv5"),
        "k",
        "folds",
        None,
        "unknown config key 'folds' at splits.cv5 (known: method, k, seed, val_fraction)",
    ),
    "bias_regg": (
        ("baselines",),
        "bias_reg",
        "bias_regg",
        None,
        "unknown config key 'bias_regg' at baselines (did you mean 'bias_reg'?)",
    ),
    "momentum": (
        ("models", "dot", "phases", 0),
        None,
        "momentum",
        0.9,
        "unknown config key 'momentum' at models.dot.phases[0] (known: lr, epochs)",
    ),
    "pretrain": (
        ("models", "mlp_then_dot", "pretrain"),
        "dropouts",
        "dropout",
        None,
        "unknown config key 'dropout' at models.mlp_then_dot.pretrain (did you mean 'dropouts'?)",
    ),
    "loss_weights": (
        ("models", "hybrid", "loss_weights"),
        "linear",
        "lineer",
        None,
        "unknown config key 'lineer' at models.hybrid.loss_weights (did you mean 'linear'?)",
    ),
    "dataset entry": (
        ("datasets", "ml-100k"),
        "rating_scale",
        "rating_scal",
        None,
        "unknown config key 'rating_scal' at datasets.ml-100k (did you mean 'rating_scale'?)",
    ),
    "release file": (
        ("datasets", "seed-sample", "files", 0),
        "sha256",
        "sha265",
        None,
        "unknown config key 'sha265' at datasets.seed-sample.files[0] (did you mean 'sha256'?)",
    ),
    "synthetic": (
        ("datasets", "synthetic-100k", "synthetic"),
        "n_factors",
        "nfactors",
        None,
        "unknown config key 'nfactors' at datasets.synthetic-100k.synthetic "
        "(did you mean 'n_factors'?)",
    ),
    "reports": (
        ("reports", "pca"),
        "n_components",
        "n_component",
        None,
        "unknown config key 'n_component' at reports.pca (did you mean 'n_components'?)",
    ),
    "bench": (
        ("bench",),
        "naive_lr",
        "naive_rate",
        None,
        "unknown config key 'naive_rate' at bench (did you mean 'naive_lr'?)",
    ),
}


@pytest.mark.parametrize("typo", TYPOS.values(), ids=TYPOS.keys())
def test_misspelt_key_is_named_with_its_place_and_the_near_name(typo):
    parent, old, new, value, message = typo
    assert problems(with_key(parent, old, new, value)) == [message]


@pytest.mark.parametrize("typo", TYPOS.values(), ids=TYPOS.keys())
def test_schema_rejects_the_misspelt_key_too(typo):
    parent, old, new, value, _ = typo
    with pytest.raises(WorkflowError):
        schema_validate(with_key(parent, old, new, value))


def test_every_problem_is_listed_in_one_error():
    config = with_key(("models", "dot"), "batch_size", "batchsize")
    config["baselines"]["bias_regg"] = 1.0
    config["models"]["mlp"]["weight_decay"] = float("nan")
    assert problems(config) == [
        "unknown config key 'bias_regg' at baselines (did you mean 'bias_reg'?)",
        "models.mlp.weight_decay is nan; expected a finite number",
        "unknown config key 'batchsize' at models.dot (did you mean 'batch_size'?)",
    ]


def test_free_names_are_not_flagged():
    config = fresh()
    config["datasets"]["my-ratings"] = {
        "url": "https://example.org/my-ratings.zip",
        "format": "csv",
        "ratings": "my/ratings.csv",
        "movies": "my/movies.csv",
    }
    config["models"]["dot_wide"] = {**config["models"]["dot"], "n_factors": 200}
    config["bench"]["goals"]["dot_wide"] = {"plain": 5, "naive": 50}
    check_config(config, SCHEMA)
    schema_validate(config)


@pytest.mark.parametrize(
    "parent, key, text, message",
    [
        (("models", "dot"), "weight_decay", ".nan", "models.dot.weight_decay is nan"),
        (("models", "dot", "phases", 1), "lr", ".inf", "models.dot.phases[1].lr is inf"),
        (("splits", "random"), "val_fraction", ".NaN", "splits.random.val_fraction is nan"),
        (("bench", "goals"), "mlp", "-.inf", "bench.goals.mlp is -inf"),
    ],
)
def test_non_finite_numbers_are_rejected_with_their_place(parent, key, text, message):
    value = yaml.safe_load(f"x: {text}")["x"]
    config = fresh()
    block = config
    for part in parent:
        block = block[part]
    block[key] = value
    assert problems(config) == [f"{message}; expected a finite number"]


def entry_without(*keys, **extra):
    entry = {k: v for k, v in CONFIG["datasets"]["ml-1m"].items() if k not in keys}
    config = fresh()
    config["datasets"]["ml-1m"] = {**entry, **extra}
    return config


@pytest.mark.parametrize(
    "config, message",
    [
        (entry_without("format"), "'format' is a required property"),
        (entry_without("ratings"), "'ratings' is a required property"),
        (entry_without("movies"), "'movies' is a required property"),
        (entry_without("url"), "'url' is a required property"),
        (entry_without(files=[{"url": "https://example.org/a.zip"}]), "should not be valid"),
        (entry_without(synthetic={"n_users": 2, "n_movies": 2, "n_ratings": 2}), "synthetic"),
    ],
    ids=["no format", "no ratings", "no movies", "no url or files", "url and files", "synthetic"],
)
def test_incomplete_or_mixed_registry_entry_is_a_schema_error(config, message):
    check_config(config, SCHEMA)  # every key is a known one
    with pytest.raises(WorkflowError) as caught:
        schema_validate(config)
    assert message in str(caught.value)
    assert "['datasets']['ml-1m']" in str(caught.value)


def test_synthetic_entry_needs_only_its_generator_settings():
    config = fresh()
    config["datasets"]["synthetic-tiny"] = {
        "synthetic": {"n_users": 20, "n_movies": 30, "n_ratings": 200}
    }
    check_config(config, SCHEMA)
    schema_validate(config)


def test_the_notebook_config_names_every_key_the_defaults_set_for_its_models():
    """A --configfile is merged into config.yaml key by key, so a tuned default the
    notebook's block does not name (iterate averaging, say) would leak into the 2017 run."""
    notebook = yaml.safe_load((REPO / "config/notebook-2017.yaml").read_text())["models"]
    for name, block in notebook.items():
        leaked = set(CONFIG["models"].get(name, {})) - set(block)
        assert not leaked, f"notebook-2017.yaml models.{name} lacks {sorted(leaked)}"
