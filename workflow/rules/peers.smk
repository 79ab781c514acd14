# Peers: the field's reference libraries (Surprise, myFM) fitted on exactly our
# split files, in their own rule and env, and scored on our test part like our
# models (same metrics.json fields, test predictions in test-row order), and
# each peer's top-N list beside our models' (the fitted model is not saved, so
# the list is written by the same job; changing recommend.n refits the peers).
# Each job gets only its own block under `peers:`, so changing one reruns only it.


rule fit_peer:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        test=rules.split_ratings.output.test,
        users=rules.index_ratings.output.users,
        movies=rules.index_ratings.output.movies,
        code=library(
            "peers.py",
            "peer_libraries.py",
            "peer_lists.py",
            "recommend.py",
            "evaluation.py",
            "atomic.py",
            "arrays.py",
        ),
    output:
        metrics="results/{dataset}/{split}/peers/{peer}/metrics.json",
        predictions="results/{dataset}/{split}/peers/{peer}/test_predictions.parquet",
        lists=list_path("{dataset}", "{split}", "{peer}"),
    log:
        "results/{dataset}/{split}/logs/fit_peer/{peer}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/fit_peer/{peer}.tsv"
    wildcard_constraints:
        peer=model_pattern(config["peers"]),
    conda:
        "../../envs/peers.yaml"
    threads: job_threads
    params:
        settings=lookup(dpath="peers/{peer}", within=config),
        rating_scale=rating_scale,
        n=RECOMMEND["n"],
    script:
        "../scripts/fit_peer.py"
