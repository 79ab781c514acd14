"""Rule rank_movie_bias: rank every movie by a model's learned bias (movie_bias.csv/.md)."""

import movierec.runlog
from movierec.reports.bias import rank_movie_bias

log = movierec.runlog.setup(snakemake.log[0])
rank_movie_bias(
    vectors_path=snakemake.input.vectors,
    movies_path=snakemake.input.movies,
    csv_path=snakemake.output.csv,
    md_path=snakemake.output.md,
    model=snakemake.wildcards.model,
    dataset=snakemake.wildcards.dataset,
    top_n=snakemake.params.top_n,
    popular_n=snakemake.params.popular_n,
    popular_top_n=snakemake.params.popular_top_n,
)
