"""Rule plot_learning_curves: train and validation RMSE per epoch of every model."""

import movierec.runlog
from movierec.reports.plots import plot_learning_curves

log = movierec.runlog.setup(snakemake.log[0])
plot_learning_curves(
    metrics_paths=snakemake.params.metrics,
    pretrain_paths=snakemake.params.pretrain,
    baselines_path=snakemake.input.baselines,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    dataset=snakemake.wildcards.dataset,
)
