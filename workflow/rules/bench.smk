# The training benchmark: per model, our loop against the plain loop (reference
# engine, same batch) and the typical DataLoader loop, on the DAG's own split and
# from the DAG's own pretrain checkpoints; then one table beside the peers' fit
# times. Never part of `rule all`: built only when asked for, e.g.
#   snakemake -j2 results/benchmarks/training-ml-latest-small.json
# It reads validation only (the test RMSEs it shows are the DAG's own metrics).


rule benchmark_model:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        init=bench_init,
        history=f"{REPORT_MODEL}/history.json",
        code=library(
            "bench",
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "training",
            "checkpoint.py",
            "arrays.py",
        ),
    output:
        json="results/benchmarks/{dataset}/{split}/training/{model}.json",
    log:
        "results/{dataset}/{split}/logs/benchmark_model/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/benchmark_model/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        settings=bench_model_settings,
        bench=bench_measuring,
        rating_scale=rating_scale,
    script:
        "../scripts/benchmark_model.py"


rule benchmark_training:
    input:
        benchmarks=bench_table_inputs("benchmarks"),
        metrics=bench_table_inputs("metrics"),
        histories=bench_table_inputs("histories"),
        peers=bench_table_inputs("peers"),
        code=library("bench"),
    output:
        json="results/benchmarks/training-{dataset}.json",
        md="results/benchmarks/training-{dataset}.md",
    log:
        "results/{dataset}/logs/benchmark_training.log",
    conda:
        "../../envs/train.yaml"
    params:
        models=list(BENCHMARKED_MODELS),
        peers=config["bench"]["peers"],
        split=bench_split(),
        bench=config["bench"],
    script:
        "../scripts/benchmark_training.py"
