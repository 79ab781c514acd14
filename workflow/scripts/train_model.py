"""Rules train_model and pretrain_model: train one model (a finetune when `init` is given)."""

import movierec.runlog
from movierec.training import train_model

log = movierec.runlog.setup(snakemake.log[0])
train_model(
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    settings=snakemake.params.settings,
    rating_scale=snakemake.params.rating_scale,
    model_pt=snakemake.output.model,
    model_json=snakemake.output.meta,
    history_json=snakemake.output.history,
    movie_vectors=snakemake.output.get("vectors"),  # pretrain_model has none
    init=snakemake.input.get("init", []),  # pretrain_model has none
    threads=snakemake.threads,
    # Set by the gpu/slurm-gpu profiles; a promised GPU that is not visible is an error.
    gpus=int(snakemake.resources.get("gpu", 0)),
)
