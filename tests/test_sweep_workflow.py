"""Sweeps through the DAG, on the default run's ml-latest-small split (ml_small_run).

Each trial is its own job: a 2 x 2 grid schedules four, adding a value
schedules only the new ones, and a change to the swept model's block retrains
every trial. The winner is the lowest validation RMSE of trials.csv, scored on
test in best.json. Bad sweep blocks stop the run at parse time, named.
"""

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO, scheduled_rules, snakemake
from movierec import sweeps
from test_report_workflow import SMALL

pytestmark = pytest.mark.slow

GRID = "sweeps: {tiny: {model: dot, grid: {weight_decay: [0.05, 0.15], n_factors: [8, 16]}}}\n"
TARGET = f"{SMALL}/sweeps/tiny/sweep.md"


def configfile(project, text, name="override-sweep.yaml"):
    path = project / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def tiny_sweep(ml_small_run):
    config = configfile(ml_small_run, GRID)
    planned = scheduled_rules(ml_small_run, TARGET, "--configfile", config)
    snakemake(ml_small_run, TARGET, "--configfile", config)
    return ml_small_run, planned


def test_each_trial_is_one_job_and_the_winner_is_the_best_validation(tiny_sweep):
    project, planned = tiny_sweep
    assert planned == {"train_trial": 4, "score_sweep": 1, "report_sweep": 1}
    base = project / SMALL / "sweeps" / "tiny"
    table = pd.read_csv(base / "trials.csv")
    assert len(table) == 4 and (table["status"] == "ok").all()
    assert set(zip(table["weight_decay"], table["n_factors"], strict=True)) == {
        (w, n) for w in (0.05, 0.15) for n in (8, 16)
    }
    assert (table["seconds"] > 0).all()
    best = json.loads((base / "best.json").read_text())
    assert {"settings", "val_rmse", "test_rmse", "n_trials"} <= set(best)
    assert best["n_trials"] == 4
    assert best["val_rmse"] == pytest.approx(table["val_rmse"].min())
    assert best["trial"] == table.loc[table["val_rmse"].idxmin(), "trial"]
    winner = table.set_index("trial").loc[best["trial"]]
    assert best["settings"]["weight_decay"] == winner["weight_decay"]
    assert best["settings"]["n_factors"] == winner["n_factors"]
    # Every other setting is the dot model's own block.
    assert best["settings"]["phases"] == [{"lr": 0.03, "epochs": 20}, {"lr": 0.01, "epochs": 10}]
    # Each trial's files are there, and its history is validation-only.
    for trial in table["trial"]:
        history = json.loads((base / "trials" / trial / "history.json").read_text())
        assert "test_rmse" not in history and history["val_rmse"] > 0
    md = (base / "sweep.md").read_text()
    assert f"test RMSE, read once after the choice, is **{best['test_rmse']:.4f}**" in md
    from test_report_workflow import assert_png

    assert_png(base / "val_rmse.png", min_side=200)


def test_adding_a_grid_value_trains_only_the_new_trials(tiny_sweep):
    project, _ = tiny_sweep
    assert scheduled_rules(project, TARGET, "--configfile", configfile(project, GRID)) == {}
    grown = GRID.replace("[0.05, 0.15]", "[0.05, 0.15, 0.3]")
    counts = scheduled_rules(project, TARGET, "--configfile", configfile(project, grown))
    assert counts == {"train_trial": 2, "score_sweep": 1, "report_sweep": 1}


def test_a_change_to_the_swept_model_retrains_every_trial(tiny_sweep):
    project, _ = tiny_sweep
    changed = GRID + "models: {dot: {batch_size: 16384}}\n"
    counts = scheduled_rules(project, TARGET, "--configfile", configfile(project, changed))
    assert counts == {"train_trial": 4, "score_sweep": 1, "report_sweep": 1}


def test_rule_sweeps_builds_every_configured_sweep(tiny_sweep):
    project, _ = tiny_sweep
    counts = scheduled_rules(project, "sweeps", "--configfile", configfile(project, GRID))
    # config.yaml's sweeps (dot_grid 24 trials, dot_random 20, implicit_grid 9); tiny is built.
    configured = yaml.safe_load((REPO / "config.yaml").read_text())["sweeps"]
    n_trials = sum(len(sweeps.sweep_trials(sweep)) for sweep in configured.values())
    assert n_trials == 53
    n = len(configured)
    assert counts == {"train_trial": n_trials, "score_sweep": n, "report_sweep": n, "sweeps": 1}


def test_a_bad_sweep_is_named_before_any_job(ml_small_run):
    """The parse-time check is wired in (each bad case: tests/test_sweeps.py)."""
    block = "{model: dot, grid: {wieght_decay: [0.1]}}"
    config = configfile(ml_small_run, f"sweeps: {{bad: {block}}}\n", "bad-sweep.yaml")
    proc = snakemake(ml_small_run, "-n", "--nolock", "--configfile", config, check=False)
    assert proc.returncode != 0
    message = "sweeps.bad: 'wieght_decay' is not a setting of models.dot"
    assert message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
