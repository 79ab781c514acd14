# MovieLens embedding recommenders: download -> index -> split -> train -> report.
# Thin on purpose: settings live in config.yaml, helpers in workflow/rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/peers.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/recommend.smk"
include: "workflow/rules/sweep.smk"
include: "workflow/rules/bench.smk"


rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True


# Without a profile a failed job's log is only named; show it (see common.smk).
onerror:
    print_failed_logs(log)
