# Sweeps (config `sweeps:`): each trial of a grid or seeded random sample is its
# own cached job (train_trial, a SLURM job under the slurm profile), named by a
# hash of its values, so adding a value trains only the new trials. The choice
# is made on validation alone; score_sweep then reads the test part once, for
# the winner. Not part of `rule all`: `snakemake -j2 sweeps` builds them all.


rule train_trial:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        init=trial_init,
        code=library(
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "training",
            "checkpoint.py",
            "negatives.py",
            "trials.py",
            "arrays.py",
        ),
    output:
        model="results/{dataset}/{split}/sweeps/{sweep}/trials/{trial}/model.pt",
        meta="results/{dataset}/{split}/sweeps/{sweep}/trials/{trial}/model.json",
        history="results/{dataset}/{split}/sweeps/{sweep}/trials/{trial}/history.json",
        result="results/{dataset}/{split}/sweeps/{sweep}/trials/{trial}/trial.json",
    log:
        "results/{dataset}/{split}/logs/train_trial/{sweep}-{trial}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/train_trial/{sweep}-{trial}.tsv"
    wildcard_constraints:
        sweep=model_pattern(SWEEPS),
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        overrides=trial_overrides,
        settings=trial_settings,
        rating_scale=rating_scale,
    script:
        "../scripts/train_trial.py"


rule score_sweep:
    input:
        results=trial_files("trial.json"),
        models=trial_files("model.pt"),
        test=rules.split_ratings.output.test,
        code=library(
            "trials.py", "sweeps.py", "evaluation.py", "checkpoint.py", "arrays.py"
        ),
    output:
        trials="results/{dataset}/{split}/sweeps/{sweep}/trials.csv",
        best="results/{dataset}/{split}/sweeps/{sweep}/best.json",
    log:
        "results/{dataset}/{split}/logs/score_sweep/{sweep}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/score_sweep/{sweep}.tsv"
    wildcard_constraints:
        sweep=model_pattern(SWEEPS),
    conda:
        "../../envs/train.yaml"
    params:
        sweep=sweep_settings,
        trials=trial_names,
        rating_scale=rating_scale,
    script:
        "../scripts/score_sweep.py"


rule report_sweep:
    input:
        trials=rules.score_sweep.output.trials,
        best=rules.score_sweep.output.best,
        code=library("reports/sweep.py", "reports/canvas.py", "reports/tables.py"),
    output:
        md=report(
            "results/{dataset}/{split}/sweeps/{sweep}/sweep.md",
            caption="../report/sweep.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "trials (Markdown)"},
        ),
        png=report(
            "results/{dataset}/{split}/sweeps/{sweep}/val_rmse.png",
            caption="../report/sweep.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}", "figure": "validation RMSE"},
        ),
        svg="results/{dataset}/{split}/sweeps/{sweep}/val_rmse.svg",
    log:
        "results/{dataset}/{split}/logs/report_sweep/{sweep}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/report_sweep/{sweep}.tsv"
    wildcard_constraints:
        sweep=model_pattern(SWEEPS),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/report_sweep.py"


# Every configured sweep on the configured dataset and split.
rule sweeps:
    input:
        sweep_reports(config["dataset"], config["split"]),
    localrule: True
