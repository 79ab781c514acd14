"""Rule score_sweep: trials.csv, the winner by validation RMSE, its test RMSE (best.json)."""

import movierec.runlog
from movierec.trials import score_sweep

log = movierec.runlog.setup(snakemake.log[0])
score_sweep(
    sweep_name=snakemake.wildcards.sweep,
    sweep=snakemake.params.sweep,
    results_paths=dict(zip(snakemake.params.trials, snakemake.input.results, strict=True)),
    model_paths=dict(zip(snakemake.params.trials, snakemake.input.models, strict=True)),
    test_path=snakemake.input.test,
    rating_scale=snakemake.params.rating_scale,
    trials_csv=snakemake.output.trials,
    best_json=snakemake.output.best,
    threads=snakemake.threads,
)
