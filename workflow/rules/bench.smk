# The training benchmark (issue 6): our training loop against a typical
# DataLoader loop, side by side in one job. Never part of `rule all`: it is
# built only when asked for, e.g.
#   snakemake -j2 results/benchmarks/training-ml-latest-small.json
# Its settings come from `bench:`, the models' from `models:` (all blocks, with
# their pretrain stages), both through params, so changing either reruns it.


rule benchmark_training:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library("bench.py", "models.py", "training.py"),
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
        models=config["models"],
        bench=config["bench"],
        rating_scale=lambda wildcards: dataset_entry(wildcards.dataset)["rating_scale"],
    script:
        "../scripts/benchmark_training.py"
