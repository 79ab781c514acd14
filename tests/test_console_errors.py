"""A failing rule shows its cause on the console, with no profile given.

Rule scripts send their stderr to the rule's log, and Snakemake's own error
block only names that log ("check log file(s)"). The workflow's defaults must
print the failed job's log, so that the first failure a newcomer sees already
says what to do.
"""

import pytest
from conftest import snakemake


@pytest.mark.slow
def test_failed_download_shows_its_log_on_the_console(project):
    """An unusable `mirror` fails the download; the console shows the log's hint about it."""
    failed = snakemake(
        project,
        "results/ml-latest-small/raw",
        "--config",
        "mirror=/nonexistent",
        check=False,
        mirror=False,
        timeout=300,
    )
    console = failed.stdout + failed.stderr
    assert failed.returncode != 0, console
    log = project / "results" / "ml-latest-small" / "logs" / "download_release.log"
    error = log.read_text().strip().splitlines()[-1]
    assert "mirror" in error and "/nonexistent" in error, error
    assert error in console, console[-4000:]
    assert "--workflow-profile" not in console


@pytest.mark.slow
def test_unreachable_release_prints_the_mirror_hint_on_the_console(project):
    """The README's first command on an offline machine: the console says to set `mirror`.

    The registry URL is pointed at a closed local port, so this is offline whatever
    network the test machine has."""
    override = project / "offline.yaml"
    override.write_text(
        "datasets:\n  ml-latest-small: {url: 'http://127.0.0.1:9/ml-latest-small.zip'}\n"
        "download: {retries: 0}\n"
    )
    failed = snakemake(
        project, "-j2", "--configfile", str(override), check=False, mirror=False, timeout=300
    )
    console = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "point the `mirror` config option at a directory" in console, console[-4000:]
    assert "--config mirror=" in console


@pytest.mark.slow
def test_a_misspelt_setting_stops_the_run_before_anything_runs(project):
    override = project / "typo.yaml"
    override.write_text("models:\n  dot: {batchsize: 1024}\nsplt: random\n")
    failed = snakemake(project, "-n", "--configfile", str(override), check=False)
    console = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "unknown config key 'batchsize' at models.dot (did you mean 'batch_size'?)" in console
    assert "unknown config key 'splt' at the top level (did you mean 'split'?)" in console
    assert not (project / "results").exists()
