"""Rule pca_movie_embeddings: PCA of a model's movie embeddings (pca.csv/.md, PC2-PC3 scatter)."""

import movierec.runlog
from movierec.reports.pca import pca_movie_embeddings

log = movierec.runlog.setup(snakemake.log[0])
pca_movie_embeddings(
    vectors_path=snakemake.input.vectors,
    movies_path=snakemake.input.movies,
    csv_path=snakemake.output.csv,
    md_path=snakemake.output.md,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    model=snakemake.wildcards.model,
    dataset=snakemake.wildcards.dataset,
    n_movies=snakemake.params.n_movies,
    n_components=snakemake.params.n_components,
    extremes=snakemake.params.extremes,
    scatter_movies=snakemake.params.scatter_movies,
)
