# Config validation and every helper function the rules use.
import copy
import os
import re
from pathlib import Path
from types import SimpleNamespace

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
    return {key: entry[key] for key in ("format", "ratings", "movies", "rating_scale")}


def library(*modules):
    """Library modules as rule inputs, so editing one reruns the rules using it.

    Paths are relative to the working directory: Snakemake records input paths,
    and absolute ones would make a moved or freshly cloned project look stale.
    """
    library_dir = os.path.join(workflow.basedir, "workflow", "scripts", "movierec")
    return [os.path.relpath(os.path.join(library_dir, m)) for m in modules]


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
        if (
            "pretrain" not in config["models"][other]
            and model_settings(other) == wanted
        ):
            return f"results/{wildcards.dataset}/models/{other}/model.pt"
    return f"results/{wildcards.dataset}/models/{model}/pretrain/model.pt"


def model_outputs(dataset):
    return expand(
        "results/{dataset}/models/{model}/metrics.json",
        dataset=dataset,
        model=MODEL_NAMES,
    ) + [f"results/{dataset}/models/baselines.json"]


# --- Reports (workflow/rules/report.smk) -------------------------------------


def model_pattern(models):
    """A wildcard constraint matching exactly the given model names."""
    return "|".join(re.escape(m) for m in models)


def model_reports(dataset, model):
    """Every per-model report of one model: PCA for all, bias ranking and plot for bias models."""
    base = f"results/{dataset}/reports/{model}"
    files = [f"{base}/{name}" for name in ("pca.md", "pca.csv", "pca_scatter.png")]
    files.append(f"{base}/pca_scatter.svg")
    if model in BIAS_MODELS:
        files += [f"{base}/{name}" for name in ("movie_bias.md", "movie_bias.csv")]
        files += [f"{base}/bias_vs_mean.png", f"{base}/bias_vs_mean.svg"]
    return files


def dataset_figures(dataset):
    """Dataset-level figures (title -> PNG); each has an SVG beside it."""
    base = f"results/{dataset}/reports"
    return {
        "Learning curves": f"{base}/learning_curves.png",
        "Model comparison": f"{base}/model_comparison.png",
    }


def report_files(dataset):
    """Every report of a dataset except the summary."""
    files = [f for m in MODEL_NAMES for f in model_reports(dataset, m)]
    for png in dataset_figures(dataset).values():
        files += [png, png[: -len(".png")] + ".svg"]
    return files


def pretrain_metrics(wildcards):
    """Model -> metrics.json of the checkpoint it starts from (pretrain or a reused model)."""
    out = {}
    for model in MODEL_NAMES:
        init = init_checkpoint(SimpleNamespace(dataset=wildcards.dataset, model=model))
        if init:
            out[model] = str(Path(init).with_name("metrics.json"))
    return out


def model_metrics(wildcards):
    """Model -> metrics.json, in config order."""
    return {
        m: f"results/{wildcards.dataset}/models/{m}/metrics.json" for m in MODEL_NAMES
    }


def pipeline_benchmarks(wildcards):
    """'rule target' -> benchmark file of every job that built a dataset's models."""
    dataset = wildcards.dataset
    source = "generate_synthetic" if is_synthetic(dataset) else "download_release"
    jobs = {}
    for name in (source, "index_ratings", "split_ratings", "compute_baselines"):
        jobs[name] = getattr(rules, name).benchmark
    for model in MODEL_NAMES:
        init = init_checkpoint(SimpleNamespace(dataset=dataset, model=model))
        if init and Path(init).parent.name == "pretrain":
            jobs[f"pretrain_model {model}"] = rules.pretrain_model.benchmark
        jobs[f"train_model {model}"] = rules.train_model.benchmark
    return {
        label: str(path).format(dataset=dataset, model=label.partition(" ")[2])
        for label, path in jobs.items()
    }


def report_benchmarks(wildcards):
    """'rule target' -> benchmark file of every report job of a dataset."""
    dataset = wildcards.dataset
    jobs = {}
    for model in MODEL_NAMES:
        names = ["pca_movie_embeddings"]
        if model in BIAS_MODELS:
            names = ["rank_movie_bias", "pca_movie_embeddings", "plot_bias_vs_mean"]
        for name in names:
            jobs[f"{name} {model}"] = getattr(rules, name).benchmark
    for name in ("plot_learning_curves", "plot_model_comparison"):
        jobs[name] = getattr(rules, name).benchmark
    return {
        label: str(path).format(dataset=dataset, model=label.partition(" ")[2])
        for label, path in jobs.items()
    }


def summary_inputs(wildcards):
    """What summarize_models reads, and the reports it links to.

    The reports and their benchmark files are ancient(): they must exist (so
    the summary target builds every report), but redrawing one after a
    threshold change does not rewrite the summary, whose content is unchanged.
    """
    return {
        "metrics": list(model_metrics(wildcards).values()),
        "baselines": f"results/{wildcards.dataset}/models/baselines.json",
        "benchmarks": list(pipeline_benchmarks(wildcards).values()),
        "reports": [ancient(f) for f in report_files(wildcards.dataset)],
        "report_benchmarks": [
            ancient(f) for f in report_benchmarks(wildcards).values()
        ],
    }


def all_targets():
    """The summary and every report of the configured dataset."""
    dataset = config["dataset"]
    return [f"results/{dataset}/reports/summary.md"] + report_files(dataset)
