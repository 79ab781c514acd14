"""Rule evaluate_model: score a model's trained replicates once on the test part."""

import movierec.runlog
from movierec.evaluation import evaluate_replicates

log = movierec.runlog.setup(snakemake.log[0])
evaluate_replicates(
    model_pts=snakemake.input.models,
    history_jsons=snakemake.input.history,
    train_path=snakemake.input.train,
    test_path=snakemake.input.test,
    metrics_jsons=snakemake.output.metrics,
    predictions_outs=snakemake.output.predictions,
    rating_scale=snakemake.params.rating_scale,
    threads=snakemake.threads,
)
