"""Rule index_ratings: a release's ratings and movies -> indexed Parquet files."""

import movierec.runlog
from movierec.index import index_ratings

log = movierec.runlog.setup(snakemake.log[0])

index_ratings(
    raw_dir=snakemake.input.raw,
    spec=snakemake.params.spec,
    duplicates=snakemake.params.duplicates,
    ratings_out=snakemake.output.ratings,
    users_out=snakemake.output.users,
    movies_out=snakemake.output.movies,
)
