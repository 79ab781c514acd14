"""Rule summarize_folds: summary.md and models.csv of a k-fold scheme, over all its folds."""

import movierec.runlog
from movierec.reports.summary import summarize_folds

log = movierec.runlog.setup(snakemake.log[0])
summarize_folds(
    metrics_paths=snakemake.params.metrics,
    predictions_paths=snakemake.params.predictions,
    baselines_paths=snakemake.params.baselines,
    baseline_predictions_paths=snakemake.params.baseline_predictions,
    test_paths=snakemake.params.tests,
    audit_paths=snakemake.params.audits,
    summary_path=snakemake.output.summary,
    csv_path=snakemake.output.table,
    dataset=snakemake.wildcards.dataset,
    scheme=snakemake.wildcards.split,
)
