"""Rule plot_model_comparison: test RMSE of every model and peer against the baselines."""

import movierec.runlog
from movierec.reports.plots import plot_model_comparison

log = movierec.runlog.setup(snakemake.log[0])
plot_model_comparison(
    metrics_paths=snakemake.params.metrics,
    peer_paths=snakemake.params.peers,
    baselines_path=snakemake.input.baselines,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    dataset=snakemake.wildcards.dataset,
)
