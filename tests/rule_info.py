"""What the workflow's rules are, read through Snakemake's own parser.

Parsing the .smk files with regular expressions would miss `use rule`, a
`conda:` given as a function, or rules added by an include; asking Snakemake
does not. The API call runs in a subprocess because it changes the working
directory and logging of the process that makes it.
"""

import json
import subprocess
import sys
from pathlib import Path

_PROBE = r"""
import json, sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, OutputSettings, ResourceSettings, StorageSettings,
)
project = Path(sys.argv[1]).resolve()
train_parts = sys.argv[2:]  # training parts to evaluate a threads function on
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(),
        storage_settings=StorageSettings(),
        snakefile=project / "Snakefile",
        workdir=project,
    )
    workflow = wf._workflow  # no public accessor for the parsed rules
    rules = []
    for rule in workflow.rules:
        conda = rule.conda_env
        cores = rule.resources.get("_cores")
        if cores is None:
            threads = 1
        elif cores.is_evaluable():
            threads = {
                p: cores.evaluate(None, input=SimpleNamespace(train=p)).value for p in train_parts
            }
        else:
            threads = cores.value
        rules.append({
            "name": rule.name,
            "conda": conda if isinstance(conda, str) or conda is None else repr(conda),
            "basedir": str(rule.basedir),
            "snakefile": str(rule.snakefile),
            "script": rule.script,
            "shell": rule.shellcmd,
            "norun": bool(rule.norun),
            "local": rule.name in workflow._localrules or bool(rule.norun),
            "threads": threads,
        })
print("RULES-JSON " + json.dumps(rules))
"""


def workflow_rules(project, train_parts=()):
    """One dict per rule: name, conda, basedir, snakefile, script, shell, norun, local, threads.

    ``threads`` is the rule's number, or for a rule whose threads are a function of
    its input, ``{path: threads}`` for each of `train_parts` given as ``input.train``.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(project), *map(str, train_parts)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RULES-JSON "):
            return json.loads(line[len("RULES-JSON ") :])
    raise AssertionError(
        f"could not read the rules of {project} (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def resolve_env(rule):
    """Absolute path of a rule's conda env file (relative paths are to the rule's .smk)."""
    return (Path(rule["basedir"]) / rule["conda"]).resolve()


def parse_jobs(output):
    """(rule, wildcards dict, local?) of every job block in Snakemake's printed output."""
    import re

    jobs = []
    blocks = re.split(r"\n(?=(?:local)?(?:checkpoint|rule) \w+:\n)", "\n" + output)
    for block in blocks:
        head = re.match(r"(local)?(?:checkpoint|rule) (\w+):\n", block)
        if not head:
            continue
        wildcards = {}
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        if wc:
            for part in wc.group(1).split(", "):
                key, _, value = part.partition("=")
                wildcards[key.strip()] = value.strip()
        jobs.append((head.group(2), wildcards, bool(head.group(1))))
    return jobs


def dry_run_jobs(project, *args, timeout=300):
    """Jobs a dry run in `project` would execute, as (rule, wildcards, local) tuples.

    The aggregate `all` job is left out. Raises with Snakemake's output on failure.
    """
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"dry run failed ({proc.returncode}): {' '.join(cmd)}\n{out[-6000:]}")
    return [job for job in parse_jobs(out) if job[0] != "all"], out
