"""Rule plot_bias_vs_mean: a model's learned movie bias against the mean rating."""

import movierec.runlog
from movierec.reports.movie_plots import plot_bias_vs_mean

log = movierec.runlog.setup(snakemake.log[0])
plot_bias_vs_mean(
    vectors_path=snakemake.input.vectors,
    movies_path=snakemake.input.movies,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    model=snakemake.wildcards.model,
    dataset=snakemake.wildcards.dataset,
    label_n=snakemake.params.label_n,
    min_ratings=snakemake.params.min_ratings,
)
