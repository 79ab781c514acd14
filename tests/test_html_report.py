"""`snakemake --report` after a real run, opened in headless Chromium.

Chromium is a system package (Debian: `apt-get install -y --no-install-recommends
chromium`; tests/run.sh installs it). Without it these tests fail, never skip: the
report is a deliverable and the browser is how we know it renders.
"""

import os
import shutil
import signal
import struct
import subprocess
import zipfile

import matplotlib.image
import pytest
from conftest import snakemake
from test_report_workflow import MODELS

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--virtual-time-budget=8000",
]
FIGURES = ["learning_curves.png", "model_comparison.png", "pca_scatter.png", "bias_vs_mean.png"]
# Opens the Comparison category and the learning curves in the report's own app
# (it has no URL routing), then records the decoded image's width in the DOM.
SHOW_FIGURE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  const path = Object.keys(results).find((p) => p.endsWith("learning_curves.png"));
  app.showCategory("Comparison");
  app.setView({content: "img", contentPath: results[path].data_uri, resultPath: path});
  setTimeout(() => {
    const img = [...document.querySelectorAll("img")].find(
      (i) => i.src.startsWith("data:image/png") && i.naturalWidth > 0);
    document.body.dataset.figureWidth = img ? img.naturalWidth : 0;
  }, 1000);
}, 500));
</script>
"""


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "headless Chromium is not installed; install it as root with "
            "`apt-get update && apt-get install -y --no-install-recommends chromium` "
            "(tests/run.sh does this)"
        )
    return path


def browse(page, tmp_path, *mode, attempts=3, timeout=90):
    """Run headless Chromium on a local page; return (stdout, stderr) of a finished run.

    Headless Chromium now and then stalls on exit here (seen once in a few dozen
    runs); a stalled run is killed with its whole process group and retried.
    """
    for _ in range(attempts):
        profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
        cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", *mode, page.as_uri()]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            continue
        assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{err[-3000:]}"
        return out, err
    pytest.fail(f"chromium did not finish within {timeout} s in {attempts} attempts: {cmd}")


def assert_screenshot(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    assert struct.unpack(">II", data[16:24]) == (1400, 1000)
    pixels = matplotlib.image.imread(path)[..., :3]
    assert pixels.std() > 0.05, "the screenshot is blank"
    return pixels


@pytest.fixture(scope="module")
def report_html(ml_small_run):
    snakemake(ml_small_run, "--report", "results/report.html")
    snakemake(ml_small_run, "--report", "results/report.zip")
    return ml_small_run / "results" / "report.html"


@pytest.mark.slow
def test_report_html_and_zip_hold_every_figure(report_html):
    text = report_html.read_text()
    assert report_html.stat().st_size > 1_000_000
    for name in [*FIGURES, "movie_bias.csv", "pca.csv", "models.csv", "summary.md"]:
        assert name in text, name
    with zipfile.ZipFile(report_html.with_suffix(".zip")) as archive:
        names = archive.namelist()
    assert "report/report.html" in names
    for name in FIGURES:
        assert any(n.endswith(name) for n in names), name
    assert sum(n.endswith("pca_scatter.png") for n in names) == len(MODELS)


@pytest.mark.slow
def test_report_loads_in_chromium(report_html, tmp_path):
    dom, _ = browse(report_html, tmp_path, "--dump-dom")
    app = dom.split('<div id="app">', 1)[1].split("<script", 1)[0]
    for category in ["Comparison", *MODELS]:
        assert f">{category}<" in app, f"category {category} not rendered"
    shot = tmp_path / "report.png"
    browse(report_html, tmp_path, f"--screenshot={shot}")
    assert_screenshot(shot)


@pytest.mark.slow
def test_report_shows_the_learning_curves(report_html, tmp_path):
    page = tmp_path / "report-figure.html"
    text = report_html.read_text()
    cut = text.rindex("</body>")
    page.write_text(text[:cut] + SHOW_FIGURE + text[cut:])
    dom, _ = browse(page, tmp_path, "--dump-dom")
    assert 'data-figure-width="' in dom, (
        "the injected navigation did not run; has Snakemake's report app renamed its "
        "globals `app` or `results`?"
    )
    width = dom.split('data-figure-width="', 1)[1].split('"', 1)[0]
    assert int(width) > 1000, f"the learning-curves PNG did not render (width {width})"
    shot = tmp_path / "figure.png"
    browse(page, tmp_path, f"--screenshot={shot}")
    pixels = assert_screenshot(shot)
    # Validation curves are matplotlib's orange (C1): the figure is on screen.
    orange = (
        (abs(pixels[..., 0] - 1.0) < 0.1)
        & (abs(pixels[..., 1] - 0.5) < 0.1)
        & (pixels[..., 2] < 0.2)
    )
    assert orange.sum() > 200, f"only {orange.sum()} orange pixels: no curves on screen"


def test_missing_chromium_fails_with_the_install_command(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y --no-install-recommends"):
        chromium()
