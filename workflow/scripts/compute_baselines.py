"""Rule compute_baselines: global mean and regularised bias-only baselines, val and test."""

import movierec.runlog
from movierec.baselines import compute_baselines

log = movierec.runlog.setup(snakemake.log[0])
compute_baselines(
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    test_path=snakemake.input.test,
    out_path=snakemake.output.baselines,
    predictions_out=snakemake.output.predictions,
    bias_reg=snakemake.params.settings["bias_reg"],
    iterations=snakemake.params.settings["iterations"],
    rating_scale=snakemake.params.rating_scale,
)
