# Recommendations: every user's top-N unrated movies from each model (all its
# replicates, one job) and from two baselines (most-rated, shrunk mean rating),
# then the ranking report on the test part and each model's similar movies.
# Lists leave out what a user rated in train and validation, so every movie
# the user has not rated is a candidate; the test part is read only by the
# ranking report, after every list is final.


rule recommend_model:
    input:
        models=replicate_files("model.pt"),
        meta=replicate_files("model.json"),
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library(
            "recommend.py",
            "models.py",
            "implicit_model.py",
            "model_layers.py",
            "settings.py",
            "checkpoint.py",
            "arrays.py",
        ),
    output:
        lists=replicate_lists(),
    log:
        "results/{dataset}/{split}/logs/recommend_model/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/recommend_model/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(MODEL_NAMES),
    conda:
        "../../envs/train.yaml"
    threads: job_threads
    params:
        n=RECOMMEND["n"],
    script:
        "../scripts/recommend_model.py"


rule recommend_baseline:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library("recommend.py", "arrays.py"),
    output:
        lists=f"results/{{dataset}}/{{split}}/recommendations/{{baseline}}/top{RECOMMEND['n']}.parquet",
    log:
        "results/{dataset}/{split}/logs/recommend_baseline/{baseline}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/recommend_baseline/{baseline}.tsv"
    wildcard_constraints:
        baseline=model_pattern(LIST_BASELINES),
    conda:
        "../../envs/train.yaml"
    params:
        n=RECOMMEND["n"],
        shrinkage=baseline_shrinkage,
    script:
        "../scripts/recommend_baseline.py"


rule score_recommendations:
    input:
        unpack(ranking_inputs),
        code=library(
            "ranking.py",
            "reports/ranking.py",
            "reports/canvas.py",
            "reports/inputs.py",
            "reports/tables.py",
        ),
    output:
        csv=report(
            f"{SPLIT_REPORT}/ranking.csv",
            caption="../report/ranking.rst",
            category="Comparison",
            labels={"figure": "ranking metrics (CSV)"},
        ),
        md=report(
            f"{SPLIT_REPORT}/ranking.md",
            caption="../report/ranking.rst",
            category="Comparison",
            labels={"figure": "ranking metrics (Markdown)"},
        ),
        png=report(
            f"{SPLIT_REPORT}/ndcg_at_k.png",
            caption="../report/ndcg_at_k.rst",
            category="Comparison",
            labels={"figure": "NDCG@k against k"},
        ),
        svg=f"{SPLIT_REPORT}/ndcg_at_k.svg",
    log:
        "results/{dataset}/{split}/logs/score_recommendations.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/score_recommendations.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        lists=list_files,
        kinds=LIST_KINDS,
        objectives=LIST_OBJECTIVES,
        settings=config["reports"]["ranking"],
    script:
        "../scripts/score_recommendations.py"


rule find_similar_movies:
    input:
        vectors=f"{REPORT_MODEL}/movie_vectors.parquet",
        movies=rules.index_ratings.output.movies,
        code=library(
            "similar.py",
            "reports/similar.py",
            "reports/inputs.py",
            "reports/tables.py",
            "vectors.py",
            "arrays.py",
        ),
    output:
        md=report(
            f"{MODEL_REPORT}/similar_movies.md",
            caption="../report/similar_movies.rst",
            category="{model}",
            subcategory="Similar movies",
            labels={"model": "{model}", "table": "nearest movies (Markdown)"},
        ),
    log:
        "results/{dataset}/{split}/logs/find_similar_movies/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/find_similar_movies/{model}.tsv"
    wildcard_constraints:
        model=model_pattern(MODEL_NAMES),
    conda:
        "../../envs/report.yaml"
    params:
        settings=config["reports"]["similar"],
    script:
        "../scripts/find_similar_movies.py"
