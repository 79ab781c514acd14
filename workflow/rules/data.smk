# Data stages: download (or generate) a release, index ids to Parquet, split.


# Fetch (or copy from `mirror`), verify checksums, unzip safely. Only `files` (URLs
# and checksums) is a param: `mirror` and the `download:` settings say where and how
# patiently to fetch, not what; the checksums pin the content, so changing them must
# not rerun the download and everything after it (the script reads them from config).
rule download_release:
    input:
        code=library("download"),
    output:
        raw=directory("results/{dataset}/raw"),
    log:
        "results/{dataset}/logs/download_release.log",
    benchmark:
        "results/benchmarks/{dataset}/download_release.tsv"
    wildcard_constraints:
        dataset=r"(?!synthetic-)[^/]+",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        files=release_files,
    script:
        "../scripts/download_release.py"


rule generate_synthetic:
    input:
        code=library("synthetic.py", "synthetic_pairs.py"),
    output:
        raw=directory("results/{dataset}/raw"),
    log:
        "results/{dataset}/logs/generate_synthetic.log",
    benchmark:
        "results/benchmarks/{dataset}/generate_synthetic.tsv"
    wildcard_constraints:
        dataset=r"synthetic-[^/]+",
    conda:
        "../../envs/data.yaml"
    params:
        spec=synthetic_params,
    script:
        "../scripts/generate_synthetic.py"


rule index_ratings:
    input:
        raw="results/{dataset}/raw",
        code=library(
            "index.py",
            "index_codes.py",
            "index_schema.py",
            "arrays.py",
            "formats",
            "atomic.py",
        ),
    output:
        ratings="results/{dataset}/data/ratings.parquet",
        users="results/{dataset}/data/users.parquet",
        movies="results/{dataset}/data/movies.parquet",
    log:
        "results/{dataset}/logs/index_ratings.log",
    benchmark:
        "results/benchmarks/{dataset}/index_ratings.tsv"
    conda:
        "../../envs/data.yaml"
    # pyarrow's CSV reader sizes its pool from OMP_NUM_THREADS, which Snakemake
    # sets to `threads`: with the default of 1 the read takes twice as long.
    threads: 4
    params:
        spec=index_spec,
        duplicates=config["index"]["duplicates"],
    script:
        "../scripts/index_ratings.py"


# One split scheme (a `splits:` entry, or one fold of a k-fold one) into train,
# validation and test. The scheme block is the param, so changing a setting
# reruns that split and what is built on it; other splits are other paths.
rule split_ratings:
    input:
        unpack(split_inputs),
        code=library(
            "split.py",
            "split_methods.py",
            "split_predefined.py",
            "index_schema.py",
            "arrays.py",
            "formats",
            "atomic.py",
        ),
    output:
        train="results/{dataset}/{split}/split/train.parquet",
        val="results/{dataset}/{split}/split/val.parquet",
        test="results/{dataset}/{split}/split/test.parquet",
        summary="results/{dataset}/{split}/split/split.json",
    log:
        "results/{dataset}/{split}/logs/split_ratings.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/split_ratings.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        scheme=split_settings,
        fold=split_fold,
        release_format=split_release_format,
    script:
        "../scripts/split_ratings.py"
