# Config validation and every helper function the rules use.
import copy
import re
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")


wildcard_constraints:
    dataset=r"[^/]+",
    model=r"[^/]+",


SYNTHETIC_NAME = re.compile(r"^synthetic-(\d+)([km]?)$")
# Sizes not in the registry scale this shape (ml-100k's users/movies per rating).
SYNTHETIC_TEMPLATE = "synthetic-100k"


def synthetic_spec(name):
    """Generator settings for `synthetic-<N>[k|m]`, from the registry or scaled."""
    if name in config["datasets"]:
        return config["datasets"][name]["synthetic"]
    match = SYNTHETIC_NAME.match(name)
    n = int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    base = config["datasets"][SYNTHETIC_TEMPLATE]["synthetic"]
    scale = n / base["n_ratings"]
    spec = dict(base)
    spec["n_ratings"] = n
    spec["n_users"] = max(10, round(base["n_users"] * scale**0.5))
    spec["n_movies"] = max(10, round(base["n_movies"] * scale**0.5))
    return spec


def is_synthetic(name):
    return bool(SYNTHETIC_NAME.match(name))


def dataset_entry(name):
    """The registry entry of a dataset, or a clear error listing the known ones."""
    if name in config["datasets"]:
        entry = copy.deepcopy(config["datasets"][name])
    elif is_synthetic(name):
        entry = {"synthetic": synthetic_spec(name), "rating_scale": [0.5, 5.0]}
    else:
        known = ", ".join(sorted(config["datasets"]))
        raise ValueError(
            f"Unknown dataset {name!r}. Known datasets: {known}, "
            "or synthetic-<N>[k|m]. Add one under `datasets:` with --configfile."
        )
    if "synthetic" in entry:
        entry.update(format="csv", ratings="ratings.csv", movies="movies.csv")
    return entry


dataset_entry(config["dataset"])  # fail at parse time on an unknown name


def release_files(wildcards):
    """What download_release fetches: a list of {url, sha256, md5}."""
    entry = dataset_entry(wildcards.dataset)
    if "files" in entry:
        return entry["files"]
    return [{key: entry.get(key) for key in ("url", "sha256", "md5")}]


def index_spec(wildcards):
    """How index_ratings reads a release: format, member paths, rating scale."""
    entry = dataset_entry(wildcards.dataset)
    return {
        key: entry[key] for key in ("format", "ratings", "movies", "rating_scale")
    }


def library(*modules):
    """Library modules as rule inputs, so editing one reruns the rules using it."""
    return [workflow.source_path(f"../scripts/movierec/{m}") for m in modules]


MODEL_NAMES = list(config["models"])
BIAS_MODELS = [m for m in MODEL_NAMES if config["models"][m]["arch"] != "mlp"]


def model_settings(model):
    """A model's settings without its pretrain block (that is its own rule)."""
    settings = copy.deepcopy(config["models"][model])
    settings.pop("pretrain", None)
    return settings


def pretrain_settings(model):
    return copy.deepcopy(config["models"][model]["pretrain"])


def init_checkpoint(wildcards):
    """The checkpoint a finetune starts from; [] for a model without pretrain.

    When the pretrain block equals another model's settings exactly, that
    model's checkpoint is reused so the DAG trains it once.
    """
    model = wildcards.model
    if "pretrain" not in config["models"][model]:
        return []
    wanted = pretrain_settings(model)
    for other in MODEL_NAMES:
        if "pretrain" not in config["models"][other] and model_settings(other) == wanted:
            return f"results/{wildcards.dataset}/models/{other}/model.pt"
    return f"results/{wildcards.dataset}/models/{model}/pretrain/model.pt"


def model_outputs(dataset):
    return expand(
        "results/{dataset}/models/{model}/metrics.json",
        dataset=dataset,
        model=MODEL_NAMES,
    ) + [f"results/{dataset}/models/baselines.json"]


def all_targets():
    return [f"results/{config['dataset']}/reports/summary.md"]
