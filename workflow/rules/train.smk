# Training: baselines, the five models (each in `replicates` seeds), pretrain ->
# finetune edges, and the one reading of the test set per trained model.
# Training rules take train and validation only; evaluate_model, which runs
# after every choice training made, is the only model rule that reads test.


rule compute_baselines:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        test=rules.split_ratings.output.test,
        code=library("baselines.py", "evaluation.py", "arrays.py"),
    output:
        baselines="results/{dataset}/{split}/models/baselines.json",
        predictions="results/{dataset}/{split}/models/baselines_test_predictions.parquet",
    log:
        "results/{dataset}/{split}/logs/compute_baselines.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/compute_baselines.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        settings=config["baselines"],
        rating_scale=rating_scale,
    script:
        "../scripts/compute_baselines.py"


rule train_model:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        init=init_checkpoint,
        code=library(
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "training",
            "checkpoint.py",
            "negatives.py",
            "vectors.py",
            "arrays.py",
        ),
    output:
        model=f"{MODEL_DIR}/model.pt",
        meta=f"{MODEL_DIR}/model.json",
        history=f"{MODEL_DIR}/history.json",
        vectors=f"{MODEL_DIR}/movie_vectors.parquet",
    log:
        "results/{dataset}/{split}/logs/train_model/{model}-rep{replicate}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/train_model/{model}-rep{replicate}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: job_threads
    params:
        settings=model_settings,
        rating_scale=rating_scale,
    script:
        "../scripts/train_model.py"


# The pretrain stage of a model with a `pretrain:` block: train_model's job on
# that block, written under rep{r}/pretrain/, with no checkpoint to start from.
use rule train_model as pretrain_model with:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library(
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "training",
            "checkpoint.py",
            "arrays.py",
        ),
    output:
        model=f"{MODEL_DIR}/pretrain/model.pt",
        meta=f"{MODEL_DIR}/pretrain/model.json",
        history=f"{MODEL_DIR}/pretrain/history.json",
    log:
        "results/{dataset}/{split}/logs/pretrain_model/{model}-rep{replicate}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/pretrain_model/{model}-rep{replicate}.tsv"
    params:
        settings=pretrain_settings,
        rating_scale=rating_scale,


# One job per model scores all its replicates: the test part is read once per
# checkpoint, and a job (whose start-up costs more than scoring ~10k ratings)
# is saved per replicate. Adding replicates reruns only this cheap step.
rule evaluate_model:
    input:
        models=replicate_files("model.pt"),
        meta=replicate_files("model.json"),
        history=replicate_files("history.json"),
        train=rules.split_ratings.output.train,
        test=rules.split_ratings.output.test,
        code=library(
            "evaluation.py",
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "checkpoint.py",
            "arrays.py",
        ),
    output:
        metrics=replicate_files("metrics.json"),
        predictions=replicate_files("test_predictions.parquet"),
    log:
        "results/{dataset}/{split}/logs/evaluate_model/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/evaluate_model/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        rating_scale=rating_scale,
    script:
        "../scripts/evaluate_model.py"
