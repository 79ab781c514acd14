"""Rule find_similar_movies: nearest movies by embedding cosine similarity (similar_movies.md)."""

import movierec.runlog
from movierec.reports.similar import similar_movies

log = movierec.runlog.setup(snakemake.log[0])
settings = snakemake.params.settings
similar_movies(
    vectors_path=snakemake.input.vectors,
    movies_path=snakemake.input.movies,
    md_path=snakemake.output.md,
    model=snakemake.wildcards.model,
    dataset=snakemake.wildcards.dataset,
    most_rated=settings["most_rated"],
    movie_ids=settings["movie_ids"],
    n=settings["n"],
    min_ratings=settings["min_ratings"],
)
