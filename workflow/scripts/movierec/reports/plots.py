"""Figures that compare the models of a split: learning curves and test RMSE with its cost.

Drawn on the canvas every report figure uses (`movierec.reports.canvas`);
the per-movie scatter plots are in `movierec.reports.movie_plots`.
"""

import logging
import math

import numpy as np

from movierec.reports.canvas import new_figure, save_figure
from movierec.reports.inputs import ratings_per_second, training_seconds

log = logging.getLogger(__name__)


def _phase_starts(epochs):
    """(epoch, lr) where each phase after the first begins."""
    starts = []
    for prev, cur in zip(epochs, epochs[1:], strict=False):
        if cur["phase"] != prev["phase"]:
            starts.append((cur["epoch"], cur["lr"]))
    return starts


def learning_curves_figure(metrics, pretrain, baselines, dataset):
    """One panel per model: train and validation RMSE per epoch, phases and baselines marked.

    Parameters
    ----------
    metrics : dict
        Model name -> its metrics.json content, in display order.
    pretrain : dict
        Model name -> metrics of the stage it was initialised from (drawn at
        epochs <= 0, shaded), or absent.
    baselines : dict
        baselines.json content (their validation RMSEs are drawn).
    """
    baselines = {f"{k}_rmse": v["val_rmse"] for k, v in baselines["baselines"].items()}
    n = len(metrics)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = new_figure(5.2 * cols, 3.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    top = 1.12 * baselines["global_mean_rmse"]
    low = min(
        [baselines["bias_only_rmse"]]
        + [min(e["val_rmse"] for e in m["history"]) for m in metrics.values()]
        + [min(math.sqrt(max(e["train_mse"], 0)) for e in m["history"]) for m in metrics.values()]
    )
    for ax, (model, m) in zip(axes, metrics.items(), strict=False):
        epochs = m["history"]
        x = [e["epoch"] for e in epochs]
        pre = pretrain.get(model)
        if pre:
            shift = max(e["epoch"] for e in pre["history"])
            px = [e["epoch"] - shift for e in pre["history"]]
            ax.axvspan(min(px) - 0.5, 0.5, color="0.93", zorder=0)
            ax.text(min(px) - 0.4, top, "pretrain", va="top", fontsize=8, color="0.4")
            ax.plot(
                px,
                [math.sqrt(max(e["train_mse"], 0)) for e in pre["history"]],
                ls="--",
                color="C0",
                alpha=0.6,
            )
            ax.plot(px, [e["val_rmse"] for e in pre["history"]], marker=".", color="C1", alpha=0.6)
        ax.plot(
            x,
            [math.sqrt(max(e["train_mse"], 0)) for e in epochs],
            ls="--",
            color="C0",
            label="train RMSE (during epoch)",
        )
        ax.plot(x, [e["val_rmse"] for e in epochs], marker=".", color="C1", label="validation RMSE")
        best = m["best_epoch"]
        best_rmse = m["val_rmse"]
        ax.plot(
            [best],
            [best_rmse],
            marker="*",
            ms=12,
            color="C3",
            ls="none",
            label="kept (best validation) epoch",
            zorder=4,
        )
        ax.annotate(
            f"{best_rmse:.3f}",
            (best, best_rmse),
            xytext=(0, -12),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="C3",
        )
        for key, name, color, style in (
            ("bias_only_rmse", "bias-only baseline", "0.3", ":"),
            ("global_mean_rmse", "global mean", "0.6", "-."),
        ):
            ax.axhline(
                baselines[key], color=color, ls=style, lw=1, label=f"{name} {baselines[key]:.3f}"
            )
        phases = [(x[0], epochs[0]["lr"])] + _phase_starts(epochs)
        for k, (start, lr) in enumerate(phases):
            edge = start - 0.5
            if k:
                ax.axvline(edge, color="0.5", ls="--", lw=0.8)
            ax.text(
                edge, top, f" lr {lr:g}", rotation=90, va="top", ha="left", fontsize=7, color="0.35"
            )
        ranked = m.get("selected_by")
        if ranked:
            # Kept by a ranking score (sampled negatives): draw it on its own axis.
            twin = ax.twinx()
            twin.plot(x, [e[ranked] for e in epochs], marker=".", color="C2")
            twin.plot([best], [m[ranked]], marker="*", ms=12, color="C3", ls="none", zorder=4)
            twin.set_ylabel(f"{ranked.replace('val_', 'validation ')} (kept epoch: its best)",
                            color="C2")  # fmt: skip
            twin.tick_params(axis="y", colors="C2")
        if best_rmse > top:
            ax.text(
                0.5,
                0.5,
                f"validation RMSE {best_rmse:.3f} of the kept epoch\nis above this axis",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="C3",
            )
        first = min(px) if pre else x[0]
        ax.set_xlim(first - 0.7, x[-1] + 0.7)
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].set_ylim(low - 0.03, top)
    for ax in axes[::cols]:
        ax.set_ylabel("RMSE (stars)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=9)
    fig.suptitle(
        f"Learning curves on {dataset}, validation only (dashed verticals: learning-rate "
        f"phase changes; y axis cut at 1.12x the global-mean RMSE)",
        fontsize=11,
    )
    return fig


def comparison_figure(metrics, baselines, dataset, peers=None):
    """Test RMSE (mean and sd over replicates) of every model against the baselines, and its cost.

    Parameters
    ----------
    metrics : dict
        Model name -> list of its replicates' metrics.json contents.
    baselines : dict
        baselines.json content (their test RMSEs are drawn).
    peers : dict, optional
        Peer name -> its metrics.json (a reference library on the same split),
        drawn in green and labelled "(peer)".
    """
    peers = peers or {}
    test = {k: np.array([m["test_rmse"] for m in ms]) for k, ms in metrics.items()}
    test |= {f"{k} (peer)": np.array([m["test_rmse"]]) for k, m in peers.items()}
    names = sorted(test, key=lambda k: test[k].mean())
    rmse = [float(test[k].mean()) for k in names]
    sd = [float(test[k].std(ddof=1)) if len(test[k]) > 1 else 0.0 for k in names]
    is_peer = [k.endswith(" (peer)") for k in names]
    seconds = [
        float(peers[k[: -len(" (peer)")]]["fit_seconds"])
        if peer
        else float(np.mean([training_seconds(m) for m in metrics[k]]))
        for k, peer in zip(names, is_peer, strict=True)
    ]
    base = {k: v["test_rmse"] for k, v in baselines["baselines"].items()}
    fig = new_figure(11, 0.55 * len(names) + 2.6)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    ypos = np.arange(len(names))[::-1]  # best on top
    left.hlines(ypos, 0, rmse, color="0.8", lw=2)
    for y, v, e, peer in zip(ypos, rmse, sd, is_peer, strict=True):
        left.errorbar(
            v, y, xerr=e, fmt="D" if peer else "o", color="C2" if peer else "C1", ms=8,
            capsize=4, zorder=3,
        )  # fmt: skip
    for y, v, e in zip(ypos, rmse, sd, strict=True):
        gain = base["bias_only"] - v
        left.annotate(
            f"{v:.4f} ± {e:.4f} ({abs(gain):.3f} {'better' if gain > 0 else 'worse'} "
            "than bias-only)",
            (v, y),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    for value, label, style in (
        (base["bias_only"], "bias-only baseline", ":"),
        (base["global_mean"], "global-mean baseline", "-."),
    ):
        left.axvline(value, color="0.3", ls=style, lw=1.2, label=f"{label} ({value:.3f})")
    fig.legend(loc="outside lower center", ncol=2, fontsize=9)
    lo = min([v - e for v, e in zip(rmse, sd, strict=True)] + [base["bias_only"]])
    hi = max(rmse + [base["global_mean"]])
    span = hi - lo or 0.1
    left.set_xlim(lo - 0.15 * span, hi + 0.1 * span)
    left.set_ylim(-0.6, len(names) - 0.4)
    left.set_yticks(ypos, names)
    n_rep = max(len(ms) for ms in metrics.values())
    left.set_xlabel(f"test RMSE, mean ± sd over {n_rep} replicate(s) (stars; lower is better)")
    left.grid(axis="x", alpha=0.3)
    right.barh(ypos, seconds, color=["C2" if p else "C0" for p in is_peer], alpha=0.8)
    for y, s_, k, peer in zip(ypos, seconds, names, is_peer, strict=True):
        rate = None if peer else ratings_per_second(metrics[k][0])
        text = f"{s_:.1f} s" + (f", {rate / 1e6:.2f}M ratings/s" if rate else "")
        right.annotate(
            text, (s_, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
        )
    right.set_xlim(0, max(seconds) * 1.6 if max(seconds) > 0 else 1)
    right.set_xlabel("training time (s, mean over replicates)")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Model comparison on {dataset} (test set)", fontsize=12)
    return fig


def plot_learning_curves(
    metrics_paths, pretrain_paths, baselines_path, png_path, svg_path, dataset
):
    """Write learning_curves.png/.svg from every model's metrics.json.

    Parameters
    ----------
    metrics_paths : dict
        Model name -> metrics.json, in panel order.
    pretrain_paths : dict
        Model name -> history.json (or metrics.json) of the stage it was initialised from.
    baselines_path : path
        baselines.json, drawn as reference lines.
    """
    from movierec.reports.inputs import read_json, read_metrics

    metrics = {m: read_metrics(p) for m, p in metrics_paths.items()}
    pretrain = {m: read_metrics(p, test=False) for m, p in pretrain_paths.items()}
    baselines = read_json(baselines_path, ("baselines",))
    save_figure(learning_curves_figure(metrics, pretrain, baselines, dataset), png_path, svg_path)
    log.info("learning curves of %d models", len(metrics))


def plot_model_comparison(
    metrics_paths, baselines_path, png_path, svg_path, dataset, peer_paths=None
):
    """Write model_comparison.png/.svg: test RMSE against the baselines, and training time.

    `metrics_paths` maps each model to its replicates' metrics.json files,
    `peer_paths` each peer to its metrics.json.
    """
    from movierec.reports.inputs import read_json, read_metrics

    metrics = {m: [read_metrics(p) for p in ps] for m, ps in metrics_paths.items()}
    peers = {
        p: read_json(path, ("test_rmse", "fit_seconds")) for p, path in (peer_paths or {}).items()
    }
    baselines = read_json(baselines_path, ("baselines",))
    save_figure(comparison_figure(metrics, baselines, dataset, peers), png_path, svg_path)
    log.info("compared %d models", len(metrics))
