"""Rule summarize_models: summary.md and models.csv of a split's models and baselines."""

import movierec.runlog
from movierec.reports.summary import summarize_models

log = movierec.runlog.setup(snakemake.log[0])
summarize_models(
    metrics_paths=snakemake.params.metrics,
    predictions_paths=snakemake.params.predictions,
    peer_metrics_paths=snakemake.params.peer_metrics,
    peer_predictions_paths=snakemake.params.peer_predictions,
    baselines_path=snakemake.input.baselines,
    baseline_predictions_path=snakemake.input.baseline_predictions,
    test_path=snakemake.input.test,
    split_path=snakemake.input.split,
    benchmarks=snakemake.params.benchmarks,
    ranking_path=snakemake.input.ranking,
    summary_path=snakemake.output.summary,
    csv_path=snakemake.output.table,
    dataset=snakemake.wildcards.dataset,
    split=snakemake.wildcards.split,
    links=snakemake.params.links,
    figures=snakemake.params.figures,
)
