# Training: baselines, the five models, and pretrain -> finetune edges.


rule compute_baselines:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        code=library("baselines.py"),
    output:
        baselines="results/{dataset}/models/baselines.json",
    log:
        "results/{dataset}/logs/compute_baselines.log",
    benchmark:
        "results/benchmarks/{dataset}/compute_baselines.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        settings=config["baselines"],
        rating_scale=lambda wildcards: dataset_entry(wildcards.dataset)["rating_scale"],
    script:
        "../scripts/compute_baselines.py"


rule pretrain_model:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library("models.py", "training.py", "checkpoint.py"),
    output:
        model="results/{dataset}/models/{model}/pretrain/model.pt",
        meta="results/{dataset}/models/{model}/pretrain/model.json",
        metrics="results/{dataset}/models/{model}/pretrain/metrics.json",
    log:
        "results/{dataset}/logs/pretrain_model/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/pretrain_model/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        settings=lambda wildcards: pretrain_settings(wildcards.model),
        rating_scale=lambda wildcards: dataset_entry(wildcards.dataset)["rating_scale"],
    script:
        "../scripts/pretrain_model.py"


rule train_model:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        init=init_checkpoint,
        code=library("models.py", "training.py", "checkpoint.py"),
    output:
        model="results/{dataset}/models/{model}/model.pt",
        meta="results/{dataset}/models/{model}/model.json",
        metrics="results/{dataset}/models/{model}/metrics.json",
    log:
        "results/{dataset}/logs/train_model/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_model/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        rating_scale=lambda wildcards: dataset_entry(wildcards.dataset)["rating_scale"],
    script:
        "../scripts/train_model.py"
