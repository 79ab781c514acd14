"""Rule benchmark_training: our training loop against a DataLoader loop; see movierec.bench."""

import movierec.runlog
from movierec.bench import benchmark_training

log = movierec.runlog.setup(snakemake.log[0])
benchmark_training(
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    models_config=snakemake.params.models,
    bench=snakemake.params.bench,
    rating_scale=snakemake.params.rating_scale,
    dataset=snakemake.wildcards.dataset,
    json_path=snakemake.output.json,
    md_path=snakemake.output.md,
    threads=snakemake.threads,
)
