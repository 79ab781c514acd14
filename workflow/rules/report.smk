# Reports: bias ranking, PCA of movie embeddings, plots, model comparison, summary.
# Each report is its own rule whose thresholds come through params:, so changing
# one reruns that report only; the library modules it imports are inputs, so
# editing report code reruns the reports (never training).

MODEL_REPORT = "results/{dataset}/{split}/reports/{model}"
SPLIT_REPORT = "results/{dataset}/{split}/reports"
# Per-model reports draw one replicate, REPORT_MODEL (the summary covers all of them).


rule rank_movie_bias:
    input:
        vectors=f"{REPORT_MODEL}/movie_vectors.parquet",
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/bias.py",
            "reports/inputs.py",
            "reports/tables.py",
            "vectors.py",
            "arrays.py",
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
        "results/{dataset}/{split}/logs/rank_movie_bias/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/rank_movie_bias/{model}.tsv"
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
        vectors=f"{REPORT_MODEL}/movie_vectors.parquet",
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/pca.py",
            "reports/movie_plots.py",
            "reports/labels.py",
            "reports/canvas.py",
            "reports/bias.py",
            "reports/inputs.py",
            "reports/tables.py",
            "vectors.py",
            "arrays.py",
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
        "results/{dataset}/{split}/logs/pca_movie_embeddings/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/pca_movie_embeddings/{model}.tsv"
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
        vectors=f"{REPORT_MODEL}/movie_vectors.parquet",
        movies=rules.index_ratings.output.movies,
        code=library(
            "reports/movie_plots.py",
            "reports/labels.py",
            "reports/canvas.py",
            "reports/bias.py",
            "reports/inputs.py",
            "vectors.py",
            "arrays.py",
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
        "results/{dataset}/{split}/logs/plot_bias_vs_mean/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/plot_bias_vs_mean/{model}.tsv"
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
        metrics=metrics_inputs,
        pretrain=pretrain_inputs,
        baselines=rules.compute_baselines.output.baselines,
        code=library("reports/plots.py", "reports/canvas.py", "reports/inputs.py"),
    output:
        png=report(
            f"{SPLIT_REPORT}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Comparison",
            labels={"figure": "learning curves"},
        ),
        svg=f"{SPLIT_REPORT}/learning_curves.svg",
    log:
        "results/{dataset}/{split}/logs/plot_learning_curves.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/plot_learning_curves.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        metrics=report_metrics,
        pretrain=pretrain_history,
    script:
        "../scripts/plot_learning_curves.py"


rule plot_model_comparison:
    input:
        metrics=all_metrics_inputs,
        peers=peer_metrics_inputs,
        baselines=rules.compute_baselines.output.baselines,
        code=library("reports/plots.py", "reports/canvas.py", "reports/inputs.py"),
    output:
        png=report(
            f"{SPLIT_REPORT}/model_comparison.png",
            caption="../report/model_comparison.rst",
            category="Comparison",
            labels={"figure": "model comparison"},
        ),
        svg=f"{SPLIT_REPORT}/model_comparison.svg",
    log:
        "results/{dataset}/{split}/logs/plot_model_comparison.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/plot_model_comparison.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        metrics=all_metrics,
        peers=peer_metrics,
    script:
        "../scripts/plot_model_comparison.py"


rule summarize_models:
    input:
        unpack(summary_inputs),
        code=library(
            "reports/summary.py",
            "reports/summary_table.py",
            "reports/summary_sections.py",
            "reports/inputs.py",
            "reports/tables.py",
            "evaluation.py",
            "arrays.py",
        ),
    output:
        summary=report(
            f"{SPLIT_REPORT}/summary.md",
            caption="../report/summary.rst",
            category="Comparison",
            labels={"figure": "summary (Markdown)"},
        ),
        table=report(
            f"{SPLIT_REPORT}/models.csv",
            caption="../report/summary.rst",
            category="Comparison",
            labels={"figure": "models table"},
        ),
    log:
        "results/{dataset}/{split}/logs/summarize_models.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/summarize_models.tsv"
    wildcard_constraints:
        split=f"(?!(?:{model_pattern(KFOLD_SCHEMES)})$)[^/]+",
    conda:
        "../../envs/report.yaml"
    params:
        metrics=all_metrics,
        predictions=all_predictions,
        peer_metrics=peer_metrics,
        peer_predictions=peer_predictions,
        benchmarks=summary_benchmarks,
        links=summary_links,
        figures=summary_figures,
    script:
        "../scripts/summarize_models.py"


# A k-fold scheme's summary: every fold's models and baselines, mean and sd over
# folds and replicates, paired comparisons on all ratings (the folds' test parts
# partition them).
rule summarize_folds:
    input:
        unpack(fold_inputs),
        code=library(
            "reports/summary.py",
            "reports/summary_table.py",
            "reports/summary_sections.py",
            "reports/inputs.py",
            "reports/tables.py",
            "evaluation.py",
            "arrays.py",
        ),
    output:
        summary=f"{SPLIT_REPORT}/summary.md",
        table=f"{SPLIT_REPORT}/models.csv",
    log:
        "results/{dataset}/{split}/logs/summarize_folds.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/summarize_folds.tsv"
    wildcard_constraints:
        split=model_pattern(KFOLD_SCHEMES),
    conda:
        "../../envs/report.yaml"
    params:
        metrics=fold_metrics,
        predictions=fold_predictions,
        baselines=fold_baselines,
        baseline_predictions=fold_baseline_predictions,
        tests=fold_tests,
        audits=fold_audits,
    script:
        "../scripts/summarize_folds.py"
