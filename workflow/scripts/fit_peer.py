"""Rule fit_peer: one reference library's algorithm on our split, scored like our models."""

import movierec.runlog
from movierec.peers import fit_peer

log = movierec.runlog.setup(snakemake.log[0])
settings = dict(snakemake.params.settings)
# Surprise's random_state or myFM's random_seed; absent for an algorithm that draws nothing.
seed = settings.pop("seed", None)
fit_peer(
    peer=snakemake.wildcards.peer,
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    test_path=snakemake.input.test,
    settings=settings,
    seed=seed,
    rating_scale=snakemake.params.rating_scale,
    metrics_out=snakemake.output.metrics,
    predictions_out=snakemake.output.predictions,
    threads=snakemake.threads,
    lists_out=snakemake.output.lists,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    n=snakemake.params.n,
)
