# Peers: the field's reference libraries (Surprise, myFM) fitted on exactly our
# split files, in their own rule and env, and scored on our test part like our
# models (same metrics.json fields, test predictions in test-row order). Each
# job gets only its own block under `peers:`, so changing one reruns only it.


rule fit_peer:
    input:
        train=rules.split_ratings.output.train,
        val=rules.split_ratings.output.val,
        test=rules.split_ratings.output.test,
        code=library("peers.py", "evaluation.py"),
    output:
        metrics="results/{dataset}/{split}/peers/{peer}/metrics.json",
        predictions="results/{dataset}/{split}/peers/{peer}/test_predictions.parquet",
    log:
        "results/{dataset}/{split}/logs/fit_peer/{peer}.log",
    benchmark:
        "results/benchmarks/{dataset}/{split}/fit_peer/{peer}.tsv"
    wildcard_constraints:
        peer=model_pattern(config["peers"]),
    conda:
        "../../envs/peers.yaml"
    threads: 2
    params:
        settings=lookup(dpath="peers/{peer}", within=config),
        rating_scale=rating_scale,
    script:
        "../scripts/fit_peer.py"
