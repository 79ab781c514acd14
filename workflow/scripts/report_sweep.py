"""Rule report_sweep: sweep.md and the validation-RMSE figure of one sweep."""

import movierec.runlog
from movierec.reports.sweep import report_sweep

log = movierec.runlog.setup(snakemake.log[0])
report_sweep(
    trials_csv=snakemake.input.trials,
    best_json=snakemake.input.best,
    md_path=snakemake.output.md,
    png_path=snakemake.output.png,
    svg_path=snakemake.output.svg,
    dataset=snakemake.wildcards.dataset,
    split=snakemake.wildcards.split,
)
