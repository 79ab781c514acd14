"""Rule split_ratings: train, validation and test parts of the indexed ratings by a scheme."""

import movierec.runlog
from movierec.split import split_ratings

log = movierec.runlog.setup(snakemake.log[0])
split_ratings(
    snakemake.input.ratings,
    snakemake.params.scheme,
    dataset=snakemake.wildcards.dataset,
    fold=snakemake.params.fold,
    train_out=snakemake.output.train,
    val_out=snakemake.output.val,
    test_out=snakemake.output.test,
    summary_out=snakemake.output.summary,
    # Inputs and params of predefined schemes only (None for the others).
    raw_dir=snakemake.input.get("raw"),
    release_format=snakemake.params.get("release_format"),
    users_path=snakemake.input.get("users"),
    movies_path=snakemake.input.get("movies"),
)
