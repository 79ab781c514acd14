# Reports: bias ranking, PCA of movie embeddings, plots, model comparison, summary.
# Each report is its own rule whose thresholds come through params:, so changing
# one reruns that report only; the library modules it imports are inputs, so
# editing report code reruns the reports (never training).

MODEL_REPORT = "results/{dataset}/reports/{model}"
DATASET_REPORT = "results/{dataset}/reports"


rule rank_movie_bias:
    input:
        model=rules.train_model.output.model,
        meta=rules.train_model.output.meta,
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/bias.py",
            "reports/inputs.py",
            "reports/tables.py",
            "checkpoint.py",
            "models.py",
        ),
    output:
        csv=report(
            f"{MODEL_REPORT}/movie_bias.csv",
            caption="../report/movie_bias.rst",
            category="{model}",
            subcategory="Movie bias",
            labels={"model": "{model}", "table": "every movie, ranked by bias"},
        ),
        md=report(
            f"{MODEL_REPORT}/movie_bias.md",
            caption="../report/movie_bias.rst",
            category="{model}",
            subcategory="Movie bias",
            labels={"model": "{model}", "table": "top and bottom (Markdown)"},
        ),
    log:
        "results/{dataset}/logs/rank_movie_bias/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/rank_movie_bias/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(BIAS_MODELS),
    conda:
        "../../envs/report.yaml"
    params:
        top_n=config["reports"]["bias"]["top_n"],
        popular_n=config["reports"]["bias"]["popular_n"],
        popular_top_n=config["reports"]["bias"]["popular_top_n"],
    script:
        "../scripts/rank_movie_bias.py"


rule pca_movie_embeddings:
    input:
        model=rules.train_model.output.model,
        meta=rules.train_model.output.meta,
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/pca.py",
            "reports/plots.py",
            "reports/bias.py",
            "reports/inputs.py",
            "reports/tables.py",
            "checkpoint.py",
            "models.py",
        ),
    output:
        csv=report(
            f"{MODEL_REPORT}/pca.csv",
            caption="../report/pca.rst",
            category="{model}",
            subcategory="PCA of movie embeddings",
            labels={"model": "{model}", "item": "coordinates (CSV)"},
        ),
        md=report(
            f"{MODEL_REPORT}/pca.md",
            caption="../report/pca.rst",
            category="{model}",
            subcategory="PCA of movie embeddings",
            labels={"model": "{model}", "item": "components (Markdown)"},
        ),
        png=report(
            f"{MODEL_REPORT}/pca_scatter.png",
            caption="../report/pca_scatter.rst",
            category="{model}",
            subcategory="PCA of movie embeddings",
            labels={"model": "{model}", "item": "PC2 against PC3"},
        ),
        svg=f"{MODEL_REPORT}/pca_scatter.svg",
    log:
        "results/{dataset}/logs/pca_movie_embeddings/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/pca_movie_embeddings/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(MODEL_NAMES),
    conda:
        "../../envs/report.yaml"
    params:
        n_movies=config["reports"]["pca"]["n_movies"],
        n_components=config["reports"]["pca"]["n_components"],
        extremes=config["reports"]["pca"]["extremes"],
        scatter_movies=config["reports"]["pca"]["scatter_movies"],
    script:
        "../scripts/pca_movie_embeddings.py"


rule plot_bias_vs_mean:
    input:
        model=rules.train_model.output.model,
        meta=rules.train_model.output.meta,
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/plots.py",
            "reports/bias.py",
            "reports/inputs.py",
            "checkpoint.py",
            "models.py",
        ),
    output:
        png=report(
            f"{MODEL_REPORT}/bias_vs_mean.png",
            caption="../report/bias_vs_mean.rst",
            category="{model}",
            subcategory="Movie bias",
            labels={"model": "{model}", "table": "bias against mean rating (figure)"},
        ),
        svg=f"{MODEL_REPORT}/bias_vs_mean.svg",
    log:
        "results/{dataset}/logs/plot_bias_vs_mean/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/plot_bias_vs_mean/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(BIAS_MODELS),
    conda:
        "../../envs/report.yaml"
    params:
        label_n=config["reports"]["bias_plot"]["label_n"],
        min_ratings=config["reports"]["bias_plot"]["min_ratings"],
    script:
        "../scripts/plot_bias_vs_mean.py"


rule plot_learning_curves:
    input:
        metrics=lambda wildcards: list(model_metrics(wildcards).values()),
        pretrain=lambda wildcards: list(pretrain_metrics(wildcards).values()),
        baselines=rules.compute_baselines.output.baselines,
        code=library("reports/plots.py", "reports/inputs.py"),
    output:
        png=report(
            f"{DATASET_REPORT}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Comparison",
            labels={"figure": "learning curves"},
        ),
        svg=f"{DATASET_REPORT}/learning_curves.svg",
    log:
        "results/{dataset}/logs/plot_learning_curves.log",
    benchmark:
        "results/benchmarks/{dataset}/plot_learning_curves.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        metrics=model_metrics,
        pretrain=pretrain_metrics,
    script:
        "../scripts/plot_learning_curves.py"


rule plot_model_comparison:
    input:
        metrics=lambda wildcards: list(model_metrics(wildcards).values()),
        baselines=rules.compute_baselines.output.baselines,
        code=library("reports/plots.py", "reports/inputs.py"),
    output:
        png=report(
            f"{DATASET_REPORT}/model_comparison.png",
            caption="../report/model_comparison.rst",
            category="Comparison",
            labels={"figure": "model comparison"},
        ),
        svg=f"{DATASET_REPORT}/model_comparison.svg",
    log:
        "results/{dataset}/logs/plot_model_comparison.log",
    benchmark:
        "results/benchmarks/{dataset}/plot_model_comparison.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        metrics=model_metrics,
    script:
        "../scripts/plot_model_comparison.py"


rule summarize_models:
    input:
        unpack(summary_inputs),
        code=library("reports/summary.py", "reports/inputs.py", "reports/tables.py"),
    output:
        summary=report(
            f"{DATASET_REPORT}/summary.md",
            caption="../report/summary.rst",
            category="Comparison",
            labels={"figure": "summary (Markdown)"},
        ),
        table=report(
            f"{DATASET_REPORT}/models.csv",
            caption="../report/summary.rst",
            category="Comparison",
            labels={"figure": "models table"},
        ),
    log:
        "results/{dataset}/logs/summarize_models.log",
    benchmark:
        "results/benchmarks/{dataset}/summarize_models.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        metrics=model_metrics,
        benchmarks=lambda wildcards: pipeline_benchmarks(wildcards)
        | report_benchmarks(wildcards),
        links=lambda wildcards: {
            m: model_reports(wildcards.dataset, m) for m in MODEL_NAMES
        },
        figures=lambda wildcards: dataset_figures(wildcards.dataset),
    script:
        "../scripts/summarize_models.py"
