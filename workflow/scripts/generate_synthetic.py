"""Rule generate_synthetic: write a synthetic release (CSV layout) into raw/."""

import movierec.runlog
from movierec.synthetic import generate

log = movierec.runlog.setup(snakemake.log[0])
generate(spec=dict(snakemake.params.spec), out_dir=snakemake.output.raw)
