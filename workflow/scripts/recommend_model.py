"""Rule recommend_model: every user's top-N unrated movies, for each replicate of a model."""

import movierec.runlog
from movierec.recommend import recommend_replicates

log = movierec.runlog.setup(snakemake.log[0])
recommend_replicates(
    model_pts=snakemake.input.models,
    outputs=snakemake.output.lists,
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    n=snakemake.params.n,
    threads=snakemake.threads,
)
