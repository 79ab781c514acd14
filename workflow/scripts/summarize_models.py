"""Rule summarize_models: summary.md and models.csv of a dataset's models and baselines."""

import movierec.runlog
from movierec.reports.summary import summarize_models

log = movierec.runlog.setup(snakemake.log[0])
summarize_models(
    metrics_paths=snakemake.params.metrics,
    baselines_path=snakemake.input.baselines,
    benchmarks=snakemake.params.benchmarks,
    summary_path=snakemake.output.summary,
    csv_path=snakemake.output.table,
    dataset=snakemake.wildcards.dataset,
    links=snakemake.params.links,
    figures=snakemake.params.figures,
)
