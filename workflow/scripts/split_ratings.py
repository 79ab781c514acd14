"""Rule split_ratings: seeded train/validation split of the indexed ratings."""

import movierec.runlog
from movierec.split import split_ratings

log = movierec.runlog.setup(snakemake.log[0])
split_ratings(
    ratings_path=snakemake.input.ratings,
    seed=snakemake.params.seed,
    val_fraction=snakemake.params.val_fraction,
    train_out=snakemake.output.train,
    val_out=snakemake.output.val,
    summary_out=snakemake.output.summary,
)
