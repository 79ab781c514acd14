#!/usr/bin/env bash
# The README's test command: install the system package the tests drive for
# real (headless Chromium, for the HTML report check) if it is missing, set up
# a fresh venv (if missing), then run the quality gates and the whole test
# suite, SLURM tests included (tests/slurm/slurm-up.sh installs its own cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- headless Chromium: as root with apt-get, else through sudo, else a clear error ---
ensure_chromium() {
    if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
        return 0
    fi
    local how="apt-get install -y --no-install-recommends chromium"
    local as_root
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null; then
        as_root="sudo"
    else
        echo "tests/run.sh: headless Chromium (the 'chromium' command) is missing and this" \
            "user is not root and has no sudo; install it as root with: $how" >&2
        return 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "tests/run.sh: headless Chromium (the 'chromium' command) is missing and there" \
            "is no apt-get here; install Chromium with this system's package manager" >&2
        return 1
    fi
    echo "tests/run.sh: installing headless Chromium for the HTML report test (apt-get)" >&2
    if ! { $as_root apt-get update -qq &&
        $as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
        echo "tests/run.sh: could not install Chromium; install it as root with: $how" >&2
        return 1
    fi
}
ensure_chromium

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
