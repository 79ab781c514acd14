"""Complete config blocks for tests: a partial block with the schema's defaults filled in.

The library takes complete blocks (the workflow's validation fills them); a
test writes only the keys it is about, and this fills the rest from the one
source of defaults, workflow/schemas/config.schema.yaml.
"""

import copy
from pathlib import Path

from snakemake.utils import validate

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def model_block(block=None, **keys):
    """`block` (and `keys`) with every default of a model block filled in (a new dict)."""
    partial = {**copy.deepcopy(block or {}), **keys}
    config = {"dataset": "x", "datasets": {}, "models": {"m": partial}}
    validate(config, schema=str(SCHEMA))
    return config["models"]["m"]


def download_settings(**keys):
    """The `download:` block with `keys` and every other setting at the schema's default."""
    config = {"dataset": "x", "datasets": {}, "models": {}, "download": dict(keys)}
    validate(config, schema=str(SCHEMA))
    return config["download"]


def synthetic_spec(spec=None, **keys):
    """A synthetic generator spec (`spec` and `keys`) with the schema's defaults filled in."""
    partial = {**copy.deepcopy(spec or {}), **keys}
    config = {"dataset": "x", "datasets": {"x": {"synthetic": partial}}, "models": {}}
    validate(config, schema=str(SCHEMA))
    return config["datasets"]["x"]["synthetic"]
