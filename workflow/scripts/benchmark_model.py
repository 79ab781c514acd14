"""Rule benchmark_model: one model's training against the plain and typical loops."""

import movierec.runlog
from movierec.bench.model import benchmark_model

log = movierec.runlog.setup(snakemake.log[0])
benchmark_model(
    model=snakemake.wildcards.model,
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    history_path=snakemake.input.history,
    init=snakemake.input.init,
    settings=snakemake.params.settings,
    bench=snakemake.params.bench,
    rating_scale=snakemake.params.rating_scale,
    json_path=snakemake.output.json,
    threads=snakemake.threads,
)
