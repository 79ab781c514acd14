# Config validation and every helper function the rules use.
import copy
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.utils import validate

RULES_DIR = Path(workflow.current_basedir)
sys.path.insert(0, str(RULES_DIR.parent / "scripts"))
from movierec import sweeps
from movierec.settings import check_averaging, init_sources
from movierec.sweep_plan import plan_sweeps
from movierec.config_check import check_config

# Unknown keys (typos) and non-finite numbers first, with the place and the
# nearest known name; then the schema's types and ranges, which fill defaults in.
CONFIG_SCHEMA = yaml.safe_load(
    (RULES_DIR.parent / "schemas/config.schema.yaml").read_text()
)
check_config(config, CONFIG_SCHEMA)
validate(config, schema="../schemas/config.schema.yaml")


wildcard_constraints:
    dataset=r"[^/]+",
    split=r"[^/]+",
    model=r"[^/]+",
    replicate=r"\d+",
    trial=r"t[0-9a-f]{10}",


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


def synthetic_params(wildcards):
    """generate_synthetic's settings for the {dataset} it builds."""
    return synthetic_spec(wildcards.dataset)


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

    A module is a file (models.py) or a subpackage (training: every .py in it).
    Paths are relative to the working directory: Snakemake records input paths,
    and absolute ones would make a moved or freshly cloned project look stale.
    """
    library_dir = os.path.join(workflow.basedir, "workflow", "scripts", "movierec")
    paths = []
    for module in modules:
        path = os.path.join(library_dir, module)
        if os.path.isdir(path):
            paths += sorted(str(p) for p in Path(path).rglob("*.py"))
        else:
            paths.append(path)
    return [os.path.relpath(p) for p in paths]


# A job on a training part smaller than this (about 1M ratings) runs on one
# thread: there a second thread gains less than a second job beside it (the
# default DAG on ml-latest-small, 80k ratings, on 2 cores: 162 s with one thread
# per training job, 232 s with two). Larger parts get the rule's two threads.
# A profile's set-threads (slurm, gpu) overrides this.
SMALL_TRAIN_BYTES = 12_000_000


def job_threads(wildcards, input):
    """Threads of a training, top-N or peer job: 1 on a small training part, else 2.

    Snakemake evaluates this again when the job starts, once the split exists;
    before (a dry run) it assumes a large part.
    """
    train = Path(input.train)
    if train.exists() and train.stat().st_size < SMALL_TRAIN_BYTES:
        return 1
    return 2


MODEL_NAMES = list(config["models"])
BIAS_MODELS = [m for m in MODEL_NAMES if config["models"][m]["arch"] != "mlp"]


# --- Split schemes (workflow/rules/data.smk) ---------------------------------

SPLITS = config["splits"]
KFOLD_SCHEMES = [name for name, s in SPLITS.items() if s["method"] == "kfold"]
FOLD_NAME = re.compile(r"^(?P<scheme>.+)-(?P<fold>\d+)$")


def split_scheme(name):
    """(scheme settings, fold or None) of a split name: a `splits:` entry or `<kfold>-<i>`.

    A k-fold scheme `cv5` is not itself a split: its folds `cv5-1` .. `cv5-5`
    are, and `results/{dataset}/cv5/reports/summary.md` aggregates them.
    """
    if name in SPLITS and SPLITS[name]["method"] != "kfold":
        return SPLITS[name], None
    match = FOLD_NAME.match(name)
    if match and match["scheme"] in KFOLD_SCHEMES:
        scheme = SPLITS[match["scheme"]]
        fold = int(match["fold"])
        if 1 <= fold <= scheme["k"]:
            return scheme, fold
        raise ValueError(
            f"split {name!r}: fold {fold} of the {scheme['k']}-fold scheme "
            f"{match['scheme']!r} does not exist; expected 1..{scheme['k']}"
        )
    if name in KFOLD_SCHEMES:
        raise ValueError(
            f"split {name!r} is a k-fold scheme: ask for one fold ({name}-1 .. "
            f"{name}-{SPLITS[name]['k']}) or for results/<dataset>/{name}/reports/summary.md"
        )
    known = ", ".join(sorted(SPLITS))
    raise ValueError(
        f"Unknown split {name!r}. Known split schemes: {known} (k-fold ones as "
        "<name>-<fold>). Add one under `splits:` with --configfile."
    )


def split_names(name):
    """The splits a scheme name stands for: its folds for k-fold, else itself."""
    if name in KFOLD_SCHEMES:
        return [f"{name}-{i}" for i in range(1, SPLITS[name]["k"] + 1)]
    split_scheme(name)
    return [name]


split_names(config["split"])  # fail at parse time on an unknown split


def split_settings(wildcards):
    """The scheme block split_ratings gets through params (a change reruns that split)."""
    return split_scheme(wildcards.split)[0]


def split_fold(wildcards):
    return split_scheme(wildcards.split)[1]


def split_release_format(wildcards):
    """A predefined scheme reads files of the release in its own format; else None."""
    if split_settings(wildcards)["method"] != "predefined":
        return None
    return dataset_entry(wildcards.dataset)["format"]


def split_inputs(wildcards):
    """What split_ratings reads: the indexed ratings, plus the release and id maps for predefined."""
    data = f"results/{wildcards.dataset}/data"
    inputs = {"ratings": f"{data}/ratings.parquet"}
    if split_settings(wildcards)["method"] == "predefined":
        inputs.update(
            raw=f"results/{wildcards.dataset}/raw",
            users=f"{data}/users.parquet",
            movies=f"{data}/movies.parquet",
        )
    return inputs


# --- Models and replicates (workflow/rules/train.smk) ------------------------

REPLICATES = list(range(1, config["replicates"] + 1))
#: The replicate the per-model reports (bias ranking, PCA, plots) are drawn from.
REPORT_REPLICATE = 1


def with_replicate_seed(settings, replicate):
    """Replicate r trains with seed + r - 1, so adding replicates leaves the others as they are."""
    settings = copy.deepcopy(settings)
    settings["seed"] = settings["seed"] + int(replicate) - 1
    return settings


def base_settings(model):
    """A model's settings without its pretrain block (that is its own rule)."""
    settings = copy.deepcopy(config["models"][model])
    settings.pop("pretrain", None)
    return settings


def model_settings(wildcards):
    return with_replicate_seed(base_settings(wildcards.model), wildcards.replicate)


def pretrain_settings(wildcards):
    pretrain = config["models"][wildcards.model]["pretrain"]
    return with_replicate_seed(pretrain, wildcards.replicate)


def rating_scale(wildcards):
    return dataset_entry(wildcards.dataset)["rating_scale"]


#: Model -> ("pretrain", None), ("model", other) or None: where its embeddings start.
INIT_SOURCES = init_sources(config["models"])
check_averaging(config["models"])


def init_checkpoint(wildcards):
    """The checkpoint a model starts from: its own pretrain stage's, that of the
    model its ``init_from`` names (same replicate), or [] for neither."""
    source = INIT_SOURCES[wildcards.model]
    if source is None:
        return []
    kind, other = source
    model = other if kind == "model" else wildcards.model
    folder = model_dir(wildcards.dataset, wildcards.split, model, wildcards.replicate)
    return f"{folder}/model.pt" if kind == "model" else f"{folder}/pretrain/model.pt"


#: Where one replicate of a model lives: the one place this path is typed.
MODEL_DIR = "results/{dataset}/{split}/models/{model}/rep{replicate}"
#: The replicate the per-model reports and the benchmark read, as a pattern.
REPORT_MODEL = MODEL_DIR.replace("{replicate}", str(REPORT_REPLICATE))


def replicate_files(name):
    """Patterns of file `name` of every replicate of {model} (for one job over all of them)."""
    return [f"{MODEL_DIR.replace('{replicate}', str(r))}/{name}" for r in REPLICATES]


def model_dir(dataset, split, model, replicate):
    return MODEL_DIR.format(
        dataset=dataset, split=split, model=model, replicate=replicate
    )


def model_files(dataset, split, name):
    """Model -> [file `name` of each replicate], in config order."""
    return {
        m: [f"{model_dir(dataset, split, m, r)}/{name}" for r in REPLICATES]
        for m in MODEL_NAMES
    }


# --- Recommendations (workflow/rules/recommend.smk) --------------------------

RECOMMEND = config["recommend"]
#: Lists every user gets the same way (see movierec.recommend).
LIST_BASELINES = ["popularity", "shrunk_mean"]


#: What each list is (the ranking table's `kind` and `objective` columns).
LIST_KINDS = (
    {m: "model" for m in MODEL_NAMES}
    | {p: "peer" for p in config["peers"]}
    | {b: "baseline" for b in LIST_BASELINES}
)
LIST_OBJECTIVES = (
    {
        m: (
            "ratings + sampled negatives"
            if config["models"][m].get("negatives")
            else "ratings"
        )
        for m in MODEL_NAMES
    }
    | {p: "ratings (its library)" for p in config["peers"]}
    | {"popularity": "most-rated", "shrunk_mean": "shrunk mean rating"}
)


def list_path(dataset, split, name, replicate=REPORT_REPLICATE):
    """A top-N list: the report replicate's at recommendations/<name>/, others under rep<r>/."""
    parts = ["results", dataset, split, "recommendations", name]
    if int(replicate) != REPORT_REPLICATE:
        parts.append(f"rep{replicate}")
    return os.path.join(*parts, f"top{RECOMMEND['n']}.parquet")


def replicate_lists():
    """Patterns of the lists of every replicate of {model} (one recommend_model job)."""
    return [list_path("{dataset}", "{split}", "{model}", r) for r in REPLICATES]


def baseline_shrinkage(wildcards):
    """The shrunk-mean list's pseudo-ratings; None for popularity (its setting does not apply)."""
    return RECOMMEND["shrinkage"] if wildcards.baseline == "shrunk_mean" else None


def list_files(wildcards):
    """Name -> [list of each replicate]: our models, then the list baselines."""
    dataset, split = wildcards.dataset, wildcards.split
    lists = {
        m: [list_path(dataset, split, m, r) for r in REPLICATES] for m in MODEL_NAMES
    }
    for name in PEERS_IN_ALL + LIST_BASELINES:
        lists[name] = [list_path(dataset, split, name)]
    return lists


def ranking_inputs(wildcards):
    """What score_recommendations reads: every list, the test part, training counts, titles."""
    base = f"results/{wildcards.dataset}/{wildcards.split}"
    return {
        "lists": flat(list_files(wildcards)),
        "train": f"{base}/split/train.parquet",
        "test": f"{base}/split/test.parquet",
        "movies": f"results/{wildcards.dataset}/data/movies.parquet",
    }


def ranking_reports(dataset, split):
    """The split-level ranking report files (score_recommendations)."""
    base = f"results/{dataset}/{split}/reports"
    return [f"{base}/{name}" for name in ("ranking.csv", "ranking.md")]


# --- Reports (workflow/rules/report.smk) -------------------------------------


def model_pattern(models):
    """A wildcard constraint matching exactly the given names (never anything when empty)."""
    return "|".join(re.escape(m) for m in models) or "(?!)"


def model_reports(dataset, split, model):
    """Every per-model report of one model: PCA for all, bias ranking and plot for bias models."""
    base = f"results/{dataset}/{split}/reports/{model}"
    files = [f"{base}/{name}" for name in ("pca.md", "pca.csv", "pca_scatter.png")]
    files += [f"{base}/pca_scatter.svg", f"{base}/similar_movies.md"]
    if model in BIAS_MODELS:
        files += [f"{base}/{name}" for name in ("movie_bias.md", "movie_bias.csv")]
        files += [f"{base}/bias_vs_mean.png", f"{base}/bias_vs_mean.svg"]
    return files


def dataset_figures(dataset, split):
    """Split-level figures (title -> PNG); each has an SVG beside it."""
    base = f"results/{dataset}/{split}/reports"
    return {
        "Learning curves": f"{base}/learning_curves.png",
        "Model comparison": f"{base}/model_comparison.png",
        "NDCG@k of every list": f"{base}/ndcg_at_k.png",
    }


def report_files(dataset, split):
    """Every report of a split except the summary."""
    files = [f for m in MODEL_NAMES for f in model_reports(dataset, split, m)]
    for png in dataset_figures(dataset, split).values():
        files += [png, png[: -len(".png")] + ".svg"]
    return files


def report_model_files(wildcards, name):
    """Model -> file `name` of the replicate the reports are drawn from."""
    return {
        m: f"{model_dir(wildcards.dataset, wildcards.split, m, REPORT_REPLICATE)}/{name}"
        for m in MODEL_NAMES
    }


def report_metrics(wildcards):
    return report_model_files(wildcards, "metrics.json")


def all_metrics(wildcards):
    return model_files(wildcards.dataset, wildcards.split, "metrics.json")


def all_metrics_inputs(wildcards):
    return flat(all_metrics(wildcards))


def all_predictions(wildcards):
    return model_files(wildcards.dataset, wildcards.split, "test_predictions.parquet")


def pretrain_history(wildcards):
    """Model -> history of the checkpoint it starts from (its pretrain or init_from)."""
    out = {}
    for model in MODEL_NAMES:
        init = init_checkpoint(
            SimpleNamespace(
                dataset=wildcards.dataset,
                split=wildcards.split,
                model=model,
                replicate=REPORT_REPLICATE,
            )
        )
        if init:
            out[model] = str(Path(init).with_name("history.json"))
    return out


def flat(mapping):
    """The values of a {name: path or [paths]} mapping as one list (for input:)."""
    out = []
    for value in mapping.values():
        out += value if isinstance(value, list) else [value]
    return out


def metrics_inputs(wildcards):
    return flat(report_metrics(wildcards))


def pretrain_inputs(wildcards):
    return flat(pretrain_history(wildcards))


def pipeline_benchmarks(wildcards):
    """'rule target' -> benchmark file of every job that built a split's models."""
    dataset, split = wildcards.dataset, wildcards.split
    bench = f"results/benchmarks/{dataset}"
    source = "generate_synthetic" if is_synthetic(dataset) else "download_release"
    jobs = {name: f"{bench}/{name}.tsv" for name in (source, "index_ratings")}
    for name in ("split_ratings", "compute_baselines"):
        jobs[name] = f"{bench}/{split}/{name}.tsv"
    for model in MODEL_NAMES:
        for r in REPLICATES:
            target = f"{model} rep{r}"
            wc = SimpleNamespace(dataset=dataset, split=split, model=model, replicate=r)
            init = init_checkpoint(wc)
            if init and Path(init).parent.name == "pretrain":
                jobs[f"pretrain_model {target}"] = (
                    f"{bench}/{split}/pretrain_model/{model}-rep{r}.tsv"
                )
            jobs[f"train_model {target}"] = (
                f"{bench}/{split}/train_model/{model}-rep{r}.tsv"
            )
        jobs[f"evaluate_model {model}"] = f"{bench}/{split}/evaluate_model/{model}.tsv"
    for peer in PEERS_IN_ALL:
        jobs[f"fit_peer {peer}"] = f"{bench}/{split}/fit_peer/{peer}.tsv"
    return jobs


def report_benchmarks(wildcards):
    """'rule target' -> benchmark file of every report job of a split."""
    bench = f"results/benchmarks/{wildcards.dataset}/{wildcards.split}"
    jobs = {}
    for model in MODEL_NAMES:
        names = ["pca_movie_embeddings", "find_similar_movies", "recommend_model"]
        if model in BIAS_MODELS:
            names += ["rank_movie_bias", "plot_bias_vs_mean"]
        for name in names:
            jobs[f"{name} {model}"] = f"{bench}/{name}/{model}.tsv"
    for name in LIST_BASELINES:
        jobs[f"recommend_baseline {name}"] = f"{bench}/recommend_baseline/{name}.tsv"
    for name in (
        "plot_learning_curves",
        "plot_model_comparison",
        "score_recommendations",
    ):
        jobs[name] = f"{bench}/{name}.tsv"
    return jobs


def summary_benchmarks(wildcards):
    return pipeline_benchmarks(wildcards) | report_benchmarks(wildcards)


def summary_links(wildcards):
    return {
        m: model_reports(wildcards.dataset, wildcards.split, m) for m in MODEL_NAMES
    }


def summary_figures(wildcards):
    return dataset_figures(wildcards.dataset, wildcards.split)


PEERS_IN_ALL = config["peers_in_all"]


def peer_files(wildcards, name):
    """Peer -> file `name` of each peer `rule all` fits (config `peers_in_all`) on a split."""
    base = f"results/{wildcards.dataset}/{wildcards.split}/peers"
    return {p: f"{base}/{p}/{name}" for p in PEERS_IN_ALL}


def peer_metrics(wildcards):
    return peer_files(wildcards, "metrics.json")


def peer_metrics_inputs(wildcards):
    return flat(peer_metrics(wildcards))


def peer_predictions(wildcards):
    return peer_files(wildcards, "test_predictions.parquet")


def summary_inputs(wildcards):
    """What summarize_models reads, and the reports it links to.

    The reports and their benchmark files are ancient(): they must exist (so
    the summary target builds every report), but redrawing one after a
    threshold change does not rewrite the summary, whose content is unchanged.
    """
    base = f"results/{wildcards.dataset}/{wildcards.split}"
    return {
        "metrics": flat(all_metrics(wildcards)),
        "predictions": flat(all_predictions(wildcards)),
        "peer_metrics": flat(peer_metrics(wildcards)),
        "peer_predictions": flat(peer_predictions(wildcards)),
        "baselines": f"{base}/models/baselines.json",
        "baseline_predictions": f"{base}/models/baselines_test_predictions.parquet",
        "test": f"{base}/split/test.parquet",
        "split": f"{base}/split/split.json",
        "benchmarks": list(pipeline_benchmarks(wildcards).values()),
        "reports": [
            ancient(f) for f in report_files(wildcards.dataset, wildcards.split)
        ],
        # Quoted in the summary, so a change to it rewrites the summary.
        "ranking": f"{base}/reports/ranking.md",
        "report_benchmarks": [
            ancient(f) for f in report_benchmarks(wildcards).values()
        ],
    }


def fold_splits(wildcards):
    return split_names(wildcards.split)


def fold_files(wildcards, name):
    """Fold split -> {model: [file `name` of each replicate]}."""
    return {s: model_files(wildcards.dataset, s, name) for s in fold_splits(wildcards)}


def fold_metrics(wildcards):
    return fold_files(wildcards, "metrics.json")


def fold_predictions(wildcards):
    return fold_files(wildcards, "test_predictions.parquet")


def fold_parts(wildcards, name):
    return {
        s: f"results/{wildcards.dataset}/{s}/{name}" for s in fold_splits(wildcards)
    }


def fold_baselines(wildcards):
    return fold_parts(wildcards, "models/baselines.json")


def fold_baseline_predictions(wildcards):
    return fold_parts(wildcards, "models/baselines_test_predictions.parquet")


def fold_tests(wildcards):
    return fold_parts(wildcards, "split/test.parquet")


def fold_audits(wildcards):
    return fold_parts(wildcards, "split/split.json")


def fold_inputs(wildcards):
    """What summarize_folds reads: every fold's metrics, predictions, baselines and test part."""
    return {
        "metrics": [f for m in fold_metrics(wildcards).values() for f in flat(m)],
        "predictions": [
            f for m in fold_predictions(wildcards).values() for f in flat(m)
        ],
        "baselines": flat(fold_baselines(wildcards)),
        "baseline_predictions": flat(fold_baseline_predictions(wildcards)),
        "tests": flat(fold_tests(wildcards)),
        "audits": flat(fold_audits(wildcards)),
    }


def all_targets():
    """The summary (and for a single split every report) of the configured dataset and split."""
    dataset, split = config["dataset"], config["split"]
    summary = f"results/{dataset}/{split}/reports/summary.md"
    if split in KFOLD_SCHEMES:
        return [summary]
    return [summary] + report_files(dataset, split) + ranking_reports(dataset, split)


#: The models the training benchmark times: those trained on ratings alone (a model
#: with sampled negatives runs the same step on more rows; timing it again adds nothing)
#: by the fast engine (for one on the reference engine, ours is the plain loop).
BENCHMARKED_MODELS = {
    m: block
    for m, block in config["models"].items()
    if not block.get("negatives") and block["engine"] == "fast"
}


def bench_split():
    """The split the training benchmark reads: the configured one (its first fold for k-fold)."""
    return split_names(config["split"])[0]


#: bench: keys that change what benchmark_model measures (the others only the table).
BENCH_MEASURING = (
    "steps", "naive_steps", "naive_batch_size", "naive_lr", "warmup_steps", "repeats",
    "target_margin", "budget_s", "seed",
)  # fmt: skip


def bench_measuring(wildcards):
    return {key: config["bench"][key] for key in BENCH_MEASURING}


def bench_model_settings(wildcards):
    """The benchmarked model's block with replicate 1's seed (the DAG run it compares to)."""
    return with_replicate_seed(base_settings(wildcards.model), REPORT_REPLICATE)


def bench_init(wildcards):
    """The DAG's replicate-1 checkpoint the benchmarked model starts from ([] for none)."""
    return init_checkpoint(
        SimpleNamespace(
            dataset=wildcards.dataset,
            split=wildcards.split,
            model=wildcards.model,
            replicate=REPORT_REPLICATE,
        )
    )


def bench_table_inputs(kind):
    """Input function of benchmark_training: one file per benchmarked model (or peer)."""

    def inputs(wildcards):
        base = f"results/{wildcards.dataset}/{bench_split()}"
        if kind == "peers":
            return [f"{base}/peers/{p}/metrics.json" for p in config["bench"]["peers"]]
        if kind == "benchmarks":
            bench = f"results/benchmarks/{wildcards.dataset}/{bench_split()}/training"
            return [f"{bench}/{m}.json" for m in BENCHMARKED_MODELS]
        name = {"metrics": "metrics.json", "histories": "history.json"}[kind]
        return [
            f"{model_dir(wildcards.dataset, bench_split(), m, REPORT_REPLICATE)}/{name}"
            for m in BENCHMARKED_MODELS
        ]

    return inputs


def print_failed_logs(snakemake_log):
    """Print the log of each failed job on the console (what --show-failed-logs does).

    Called by `onerror:` in the Snakefile: rule scripts send their errors to
    their logs, and without a profile Snakemake only names those ("check log
    file(s)"), so a newcomer's first failure would hide its cause. Snakemake
    cannot take show-failed-logs from the Snakefile, and it looks for a default
    profile only beside the Snakefile, outside our fixed layout. Its own log
    names the failed jobs' logs as `log: <paths> (check log file(s) ...)`.
    """
    if workflow.output_settings.show_failed_logs:  # Snakemake has printed them already
        return
    logs = [snakemake_log] if isinstance(snakemake_log, str | Path) else snakemake_log
    text = "".join(
        Path(f).read_text(errors="replace") for f in logs if Path(f).is_file()
    )
    named = re.findall(
        r"^\s*log: (.+) \(check log file\(s\) for error details\)$", text, re.M
    )
    for path in dict.fromkeys(p for paths in named for p in paths.split(", ")):
        body = (
            Path(path).read_text(errors="replace")
            if Path(path).is_file()
            else "(missing)\n"
        )
        print(f"Log of the failed job, {path}:\n{body}", file=sys.stderr, end="")


# --- Sweeps (workflow/rules/sweep.smk) ---------------------------------------

SWEEPS = config["sweeps"]


# Every trial is planned and checked against the schema now, at parse time.
SWEEP_TRIALS = plan_sweeps(
    SWEEPS, {m: base_settings(m) for m in MODEL_NAMES}, CONFIG_SCHEMA
)


def sweep_dir(dataset, split, sweep):
    return os.path.join("results", dataset, split, "sweeps", sweep)


def trial_names(wildcards):
    """The trials of {sweep}, in the order trial_files lists their files."""
    return list(SWEEP_TRIALS[wildcards.sweep])


def trial_files(name):
    """An input function: file `name` of every trial of {sweep} (for score_sweep)."""

    def files(wildcards):
        base = sweep_dir(wildcards.dataset, wildcards.split, wildcards.sweep)
        return [os.path.join(base, "trials", t, name) for t in trial_names(wildcards)]

    return files


def trial_overrides(wildcards):
    trials = SWEEP_TRIALS[wildcards.sweep]
    if wildcards.trial not in trials:
        raise ValueError(
            f"sweeps.{wildcards.sweep} has no trial {wildcards.trial}; its trials are "
            "listed in trials.csv (the config has changed since it was written?)"
        )
    return trials[wildcards.trial]


def trial_settings(wildcards):
    """The swept model's block (replicate 1's seed) with the trial's values laid over it."""
    model = SWEEPS[wildcards.sweep]["model"]
    settings = with_replicate_seed(base_settings(model), REPORT_REPLICATE)
    return sweeps.apply_overrides(settings, trial_overrides(wildcards))


def trial_init(wildcards):
    """A swept finetune starts from its model's replicate-1 pretrain checkpoint (as trained)."""
    model = SWEEPS[wildcards.sweep]["model"]
    return init_checkpoint(
        SimpleNamespace(
            dataset=wildcards.dataset,
            split=wildcards.split,
            model=model,
            replicate=REPORT_REPLICATE,
        )
    )


def sweep_settings(wildcards):
    return SWEEPS[wildcards.sweep]


def sweep_reports(dataset, split):
    """The report of every configured sweep on a split (rule sweeps)."""
    return [os.path.join(sweep_dir(dataset, split, s), "sweep.md") for s in SWEEPS]
