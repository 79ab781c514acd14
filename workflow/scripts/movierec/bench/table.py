"""The benchmark's table: each model's figures beside the peers' fit times (benchmark_training)."""

import datetime
import os

from movierec import atomic
from movierec.bench.loops import seconds_to_target
from movierec.reports.inputs import read_json

PEER_KEYS = ("fit_seconds", "val_rmse", "test_rmse")


def speedups(fig):
    """Time-to-target of the plain and naive loops over ours.

    A loop that never reached the target gives a lower bound, its budget (or
    its whole schedule's time) over ours, flagged ``*_is_lower_bound``; None
    when ours did not reach it.
    """
    out = {}
    ours = fig["seconds_to_target"]
    for loop in ("plain", "naive"):
        theirs = fig[f"{loop}_seconds_to_target"]
        bound = theirs is None
        if bound:
            theirs = fig["budget_s"] if loop == "naive" else None
        out[f"speedup_vs_{loop}"] = None if ours is None or theirs is None else theirs / ours
        out[f"speedup_vs_{loop}_is_lower_bound"] = bound
    return out


def goal_checks(models, peers, goals, peer_goal):
    """Lines saying which goal is met, with the figures that decide it."""
    lines = []
    for name, wanted in goals.items():
        fig = models.get(name)
        if fig is None:
            continue
        for loop, factor in wanted.items():
            got = fig[f"speedup_vs_{loop}"]
            bound = ">= " if fig[f"speedup_vs_{loop}_is_lower_bound"] else ""
            verdict = "met" if got is not None and got >= factor else "MISSED"
            shown = "n/a" if got is None else f"{bound}{got:.1f}x"
            lines.append(
                f"- {name}: time to target vs {loop} {shown} (goal {factor:g}x): {verdict}"
            )
    ours, peer = models.get(peer_goal["model"]), peers.get(peer_goal["peer"])
    if ours is not None and peer is not None:
        seconds = seconds_to_target(ours["history"], peer["val_rmse"])
        met = seconds is not None and seconds <= peer["fit_seconds"]
        lines.append(
            f"- {peer_goal['model']} reaches {peer_goal['peer']}'s validation RMSE "
            f"({peer['val_rmse']:.4f}) in {_seconds(seconds)} s; {peer_goal['peer']} fits in "
            f"{peer['fit_seconds']:.2f} s: {'met' if met else 'MISSED'}"
        )
    return lines


def _rate(value):
    return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k"


def _seconds(value):
    return "not reached" if value is None else f"{value:.2f}"


def _speedup(fig, loop):
    value = fig[f"speedup_vs_{loop}"]
    if value is None:
        return "n/a"
    return (">= " if fig[f"speedup_vs_{loop}_is_lower_bound"] else "") + f"{value:.1f}x"


def markdown(result):
    """The page: how it was measured, one row per model, the peers, the goals."""
    bench = result["settings"]
    first = next(iter(result["models"].values()))
    lines = [
        f"# Training benchmark: {result['dataset']} ({result['split']} split)",
        "",
        f"Measured {result['date']} on {result['machine']}, {first['threads']} threads "
        f"(each model in its own job; load averages in the JSON). Command: `{result['command']}`",
        "",
        "- **ours**: `movierec.training.fit`, fast engine, the model's batch size and schedule.",
        "- **plain**: the same loop with the reference engine (autograd, "
        "`nn.Embedding(sparse=True)`, `torch.optim.SparseAdam` + `Adam`), same batch and schedule.",
        f"- **naive**: `DataLoader(shuffle=True, batch_size={bench['naive_batch_size']})`, dense "
        f"tables, `torch.optim.Adam(lr={bench['naive_lr']})` over all parameters, `loss.item()` "
        "per batch, the same per-use L2; timed at the faster of 1 and the job's threads.",
        f"- **ratings/s**: {bench['steps']} steps of ours and plain, {bench['naive_steps']} of "
        f"naive, best of {bench['repeats']} alternating runs.",
        f"- **seconds to target**: wall seconds (training and validation, every epoch) until the "
        f"validation RMSE is within {100 * bench['target_margin']:g}% of the DAG's own best for "
        f"the model; the naive loop stops after {bench['budget_s']:g} s. A finetune starts from "
        "the DAG's own pretrain checkpoint in all three loops.",
        "",
        "| model | batch | ours ratings/s | plain ratings/s | naive ratings/s | target val RMSE "
        "| ours s | plain s | naive s | vs plain | vs naive |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, fig in result["models"].items():
        cells = [
            name, str(fig["batch_size"]), _rate(fig["ratings_per_s"]),
            _rate(fig["plain_ratings_per_s"]), _rate(fig["naive_ratings_per_s"]),
            f"{fig['target_val_rmse']:.4f}", _seconds(fig["seconds_to_target"]),
            _seconds(fig["plain_seconds_to_target"]), _seconds(fig["naive_seconds_to_target"]),
            _speedup(fig, "plain"), _speedup(fig, "naive"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each model's whole training (the DAG's replicate 1) beside the peers' fits:",
        "",
    ]
    lines += ["| | training s | val RMSE | test RMSE |", "|---|--:|--:|--:|"]
    for name, fig in result["models"].items():
        lines.append(
            f"| {name} | {fig['dag_train_seconds']:.2f} | {fig['dag_best_val_rmse']:.4f} "
            f"| {fig['dag_test_rmse']:.4f} |"
        )
    for name, peer in result["peers"].items():
        lines.append(
            f"| {name} (peer) | {peer['fit_seconds']:.2f} | {peer['val_rmse']:.4f} "
            f"| {peer['test_rmse']:.4f} |"
        )
    lines += ["", "Goals:", "", *result["goals"], ""]
    return "\n".join(lines)


def benchmark_table(
    *, models, peers, dataset, split, bench, json_path, md_path, command=None
):  # fmt: skip
    """What the benchmark_training rule runs: gather, check the goals, write JSON and Markdown.

    Parameters
    ----------
    models : dict
        Model -> ``{"bench": benchmark_model's JSON, "metrics": its replicate-1
        metrics.json, "history": its replicate-1 history.json}`` (paths).
    peers : dict
        Peer -> its ``metrics.json`` (``fit_seconds``, ``test_rmse``).
    """
    figures = {}
    for name, paths in models.items():
        fig = read_json(paths["bench"], ("seconds_to_target", "budget_s", "history"))
        fig["dag_train_seconds"] = read_json(paths["history"], ("train_seconds",))["train_seconds"]
        fig["dag_test_rmse"] = read_json(paths["metrics"], ("test_rmse",))["test_rmse"]
        fig.update(speedups(fig))
        figures[name] = fig
    peer_figures = {
        name: {k: read_json(path, PEER_KEYS)[k] for k in PEER_KEYS} for name, path in peers.items()
    }
    result = {
        "dataset": dataset,
        "split": split,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPU cores",
        "command": command or f"snakemake -j2 results/benchmarks/training-{dataset}.json",
        "settings": bench,
        "models": figures,
        "peers": peer_figures,
        "goals": goal_checks(figures, peer_figures, bench["goals"], bench["peer_goal"]),
    }
    atomic.write_json(json_path, result)
    atomic.write_text(md_path, markdown(result))
    return result
