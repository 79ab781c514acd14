# The training benchmark (issue 6): our training loop against a typical
# DataLoader loop, side by side in one job. Never part of `rule all`: it is
# built only when asked for, e.g.
#   snakemake -j2 results/benchmarks/training-ml-latest-small.json
# Its settings come from `bench:`, the models' from `models:` (all blocks, with
# their pretrain stages), both through params, so changing either reruns it.
# It trains on the configured split (its first fold for a k-fold scheme) and
# reads validation only.


rule benchmark_training:
    input:
        train=f"results/{{dataset}}/{bench_split()}/split/train.parquet",
        val=f"results/{{dataset}}/{bench_split()}/split/val.parquet",
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library("bench.py", "models.py", "settings.py", "training"),
    output:
        json="results/benchmarks/training-{dataset}.json",
        md="results/benchmarks/training-{dataset}.md",
    log:
        "results/{dataset}/logs/benchmark_training.log",
    benchmark:
        "results/benchmarks/{dataset}/benchmark_training.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        models=BENCHMARKED_MODELS,
        bench=config["bench"],
        rating_scale=rating_scale,
    script:
        "../scripts/benchmark_training.py"
