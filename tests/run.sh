#!/usr/bin/env bash
# The README's test command: set up a fresh venv (if missing), then run the
# quality gates and the whole test suite, SLURM tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
snakefmt --check .
# --lint exits 0 with a "Congratulations" line when clean; anything else is a finding.
lint=$(snakemake --lint --cores 1 2>&1) || { echo "$lint"; exit 1; }
if grep -qv "^Congratulations, your workflow is in a good condition!$" <<<"$lint"; then
    echo "snakemake --lint is not clean:"; echo "$lint"; exit 1
fi
pytest "$@"
