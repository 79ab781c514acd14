"""Rule recommend_baseline: one ranking for everyone (most-rated or shrunk mean), unrated only."""

import movierec.runlog
from movierec.recommend import recommend_baseline

log = movierec.runlog.setup(snakemake.log[0])
recommend_baseline(
    baseline=snakemake.wildcards.baseline,
    output=snakemake.output.lists,
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    n=snakemake.params.n,
    shrinkage=snakemake.params.shrinkage,
)
