"""Rule benchmark_training: every model's benchmark and the peers' fit times in one table."""

import movierec.runlog
from movierec.bench.table import benchmark_table

log = movierec.runlog.setup(snakemake.log[0])
inputs, params = snakemake.input, snakemake.params
benchmark_table(
    models={
        name: {"bench": bench, "metrics": metrics, "history": history}
        for name, bench, metrics, history in zip(
            params.models, inputs.benchmarks, inputs.metrics, inputs.histories, strict=True
        )
    },
    peers=dict(zip(params.peers, inputs.peers, strict=True)),
    dataset=snakemake.wildcards.dataset,
    split=params.split,
    bench=params.bench,
    json_path=snakemake.output.json,
    md_path=snakemake.output.md,
)
