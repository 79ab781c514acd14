"""Rule train_trial: train one trial of a sweep (see movierec.trials)."""

import movierec.runlog
from movierec.trials import train_trial

log = movierec.runlog.setup(snakemake.log[0])
train_trial(
    name=snakemake.wildcards.trial,
    overrides=snakemake.params.overrides,
    settings=snakemake.params.settings,
    result_json=snakemake.output.result,
    model_pt=snakemake.output.model,
    model_json=snakemake.output.meta,
    history_json=snakemake.output.history,
    train_path=snakemake.input.train,
    val_path=snakemake.input.val,
    users_path=snakemake.input.users,
    movies_path=snakemake.input.movies,
    rating_scale=snakemake.params.rating_scale,
    init=snakemake.input.init,
    threads=snakemake.threads,
    gpus=int(snakemake.resources.get("gpu", 0)),
)
