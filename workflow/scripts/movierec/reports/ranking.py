"""The ranking report: every top-N list scored on the test part (ranking.csv/.md, NDCG@k figure).

This is the only place the test part meets a list, after every list is final.
Our models have one list per replicate (mean and sd over them); the peers
(reference libraries) and the list baselines (most-rated, shrunk mean rating)
have one each. Each of our models is
compared with `popularity` by a paired bootstrap over the evaluated users of
the per-user NDCG at the first cut-off (replicate 1's list; the replicates'
spread is the sd column), because a rating model can win on RMSE and lose on
ranking to the plain most-rated list.
"""

import logging

import numpy as np
import pandas as pd

from movierec import evaluation, ranking
from movierec.atomic import atomic_path, write_text
from movierec.reports.inputs import read_movies
from movierec.reports.tables import markdown_table

log = logging.getLogger(__name__)

#: The list every model is compared with.
REFERENCE = "popularity"
#: Training movies shown per example user.
EXAMPLE_SEEN = 5
#: Recommendations shown per example user.
EXAMPLE_TOP = 10


def read_list(path):
    """A top-N list file as a DataFrame (user, rank, movie), checked for the columns."""
    table = pd.read_parquet(path, columns=["user", "rank", "movie"])
    return table


def _mean_sd(values):
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else float("nan")


def _over(n):
    return f"mean ± sd over {n} replicates" if n > 1 else "one replicate"


def _pm(mean, sd):
    return f"{mean:.4f}" if np.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def score_lists(lists, train, test, n_movies, ks, threshold, curve_k):
    """Metrics of every list: per (name, replicate) rows, NDCG curves and per-user NDCG.

    Returns
    -------
    (DataFrame, dict, dict)
        One row per list file; name -> mean NDCG@k curve over its replicates;
        name -> per-user NDCG at ks[0] of its first list (aligned users).
    """
    popularity = np.bincount(train["movie"], minlength=n_movies)
    relevant = ranking.relevant_sets(test["user"], test["movie"], test["rating"], threshold)
    rows, curves, first = [], {}, {}
    for name, paths in lists.items():
        name_curves = []
        for replicate, path in enumerate(paths, start=1):
            ranked = ranking.ranked_lists(read_list(path))
            metrics = ranking.summarize(
                ranked, test["user"], test["movie"], test["rating"],
                n_movies=n_movies, popularity=popularity, ks=ks, threshold=threshold,
            )  # fmt: skip
            rows.append({"list": name, "replicate": replicate, **metrics})
            k_max = min(int(curve_k), ranked.movie.shape[1])
            name_curves.append(ranking.ndcg_curve(ranked, relevant, k_max))
            if replicate == 1:
                per_user = ranking.per_user_metrics(ranked, relevant, [ks[0]])
                first[name] = per_user[f"ndcg@{ks[0]}"]
        width = min(len(c) for c in name_curves)
        curves[name] = np.mean([c[:width] for c in name_curves], axis=0)
    return pd.DataFrame(rows), curves, first


def summary_table(per_list, kinds, objectives, first, ks):
    """One row per list name: mean (and sd over replicates) of each metric, and vs popularity."""
    metric_cols = [c for c in per_list.columns if c not in ("list", "replicate")]
    k0 = ks[0]
    rows = []
    for name, group in per_list.groupby("list", sort=False):
        row = {"list": name, "kind": kinds.get(name, "model"), "objective": objectives.get(name)}
        row["replicates"] = len(group)
        for col in metric_cols:
            mean, sd = _mean_sd(group[col])
            row[col] = mean
            row[f"{col}_sd"] = sd
        if REFERENCE in first and name != REFERENCE:
            diff = ranking.paired_bootstrap(first[name], first[REFERENCE], seed=0)
            row[f"ndcg@{k0}_vs_{REFERENCE}"] = diff["diff"]
            row[f"ndcg@{k0}_vs_{REFERENCE}_low"] = diff["low"]
            row[f"ndcg@{k0}_vs_{REFERENCE}_high"] = diff["high"]
        rows.append(row)
    return pd.DataFrame(rows)


def examples_markdown(model, lists_path, train, test, movies, n_users, threshold):
    """For a few users: their best-rated training movies beside `model`'s top 10, with titles."""
    if n_users < 1:
        return []
    titles = movies["title"].to_numpy()
    counts = np.bincount(train["user"])
    users = np.flatnonzero(counts > 0)
    # Light, typical and heavy raters: the quartiles of the training counts.
    picks = []
    for q in np.linspace(0.25, 0.75, n_users) if n_users > 1 else [0.5]:
        target = np.quantile(counts[users], q)
        candidates = users[np.argsort(np.abs(counts[users] - target), kind="stable")]
        picks.append(next(u for u in candidates if u not in picks))
    table = read_list(lists_path)
    liked = {}
    for u, m, r in zip(test["user"], test["movie"], test["rating"], strict=True):
        if r >= threshold:
            liked.setdefault(int(u), set()).add(int(m))
    lines = [
        f"## Example: {n_users} users and `{model}`'s top {EXAMPLE_TOP}",
        "",
        f"Each user's {EXAMPLE_SEEN} best-rated training movies beside the list "
        f"(★: in the user's test part with a rating >= {threshold:g}, a hit).",
        "",
    ]
    for u in picks:
        mine = np.flatnonzero(train["user"] == u)
        best = mine[np.lexsort((train["movie"][mine], -train["rating"][mine]))][:EXAMPLE_SEEN]
        top = table[(table["user"] == u) & (table["rank"] <= EXAMPLE_TOP)].sort_values("rank")
        seen = [f"{titles[train['movie'][i]]} ({train['rating'][i]:g})" for i in best]
        recs = [titles[m] + (" ★" if m in liked.get(int(u), ()) else "") for m in top["movie"]]
        width = max(len(seen), len(recs))
        frame = pd.DataFrame(
            {
                "rated highest in training": seen + [""] * (width - len(seen)),
                f"{model}'s top {EXAMPLE_TOP}": recs + [""] * (width - len(recs)),
            }
        )
        lines += [
            f"User index {u} ({counts[u]} training ratings):",
            "",
            markdown_table(frame),
        ]
    return lines


def ranking_markdown(table, ks, threshold, n_list, evaluated, dataset, split):
    """The lead sentences, the protocol and the table of ranking.md."""
    k0 = ks[0]
    col = f"ndcg@{k0}"
    ours = table[table["kind"] == "model"]
    lines = [f"# Top-N ranking on `{dataset}`, split `{split}`", ""]
    if len(ours) and (table["list"] == REFERENCE).any():
        best = ours.loc[ours[col].idxmax()]
        ref = table[table["list"] == REFERENCE].iloc[0]
        verdict = (
            "above" if best[f"{col}_vs_{REFERENCE}_low"] > 0
            else "below" if best[f"{col}_vs_{REFERENCE}_high"] < 0
            else "not distinguishable from"
        )  # fmt: skip
        lines += [
            f"Highest NDCG@{k0} of our models: **{best['list']}**, "
            f"{_pm(best[col], best[f'{col}_sd'])} ({_over(int(best['replicates']))}), "
            f"{verdict} the most-rated list ({ref[col]:.4f}): difference "
            f"{best[f'{col}_vs_{REFERENCE}']:+.4f} [{best[f'{col}_vs_{REFERENCE}_low']:+.4f}, "
            f"{best[f'{col}_vs_{REFERENCE}_high']:+.4f}] (paired 95% bootstrap interval over "
            "users, replicate 1).",
            "",
        ]
    lines += [
        "Protocol: for every user, every movie they did not rate in train or validation is",
        f"a candidate; each list holds the best {n_list} of them. A test movie is relevant",
        f"when its test rating is >= {threshold:g}; only users with at least one relevant",
        f"test movie are evaluated ({evaluated} here). Binary relevance; NDCG with a",
        "1/log2(rank + 1) discount; MAP@k averages precision at each hit within the top k",
        "(torchmetrics' definition, which the tests check against); MRR over the whole list.",
        "Coverage@k: share of the catalogue in some user's top k. Novelty@k: mean",
        "popularity rank (1 = most-rated in training) of the recommended movies; higher is",
        "less obvious. `vs popularity`: difference in NDCG with its interval.",
        "",
    ]
    shown = {"list": table["list"], "kind": table["kind"], "objective": table["objective"]}
    for k in ks:
        for metric in ("ndcg", "precision", "recall", "map", "hit_rate"):
            key = f"{metric}@{k}"
            shown[key] = [_pm(m, s) for m, s in zip(table[key], table[f"{key}_sd"], strict=True)]
    shown["mrr"] = [_pm(m, s) for m, s in zip(table["mrr"], table["mrr_sd"], strict=True)]
    for k in ks:
        shown[f"coverage@{k}"] = table[f"coverage@{k}"].map("{:.3f}".format)
        shown[f"novelty@{k}"] = table[f"novelty@{k}"].map("{:.0f}".format)
    vs = f"{col}_vs_{REFERENCE}"
    if vs in table:
        shown[f"NDCG@{k0} vs popularity (95% CI)"] = [
            "-"
            if pd.isna(r[vs])
            else f"{r[vs]:+.4f} [{r[f'{vs}_low']:+.4f}, {r[f'{vs}_high']:+.4f}]"
            for _, r in table.iterrows()
        ]
    lines += [markdown_table(pd.DataFrame(shown).fillna("-"))]
    lines += ["Every number is in `ranking.csv`.", ""]
    return lines


def ndcg_figure(curves, kinds, dataset):
    """NDCG@k against k, one line per list (baselines dashed)."""
    from movierec.reports.canvas import new_figure

    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        k = np.arange(1, len(curve) + 1)
        style = {"baseline": "--", "peer": ":"}.get(kinds.get(name), "-")
        ax.plot(k, curve, style, label=name, linewidth=1.6)
    ax.set_xlabel("k (list cut-off)")
    ax.set_ylabel("mean NDCG@k (test)")
    ax.set_title(f"NDCG@k of every top-N list, {dataset} (dashed: baselines, dotted: peers)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig


def score_recommendations(*, lists, train_path, test_path, movies_path, csv_path, md_path,
                          png_path, svg_path, ks, relevant_rating, curve_k, example_users,
                          kinds, objectives, dataset, split):  # fmt: skip
    """What rule score_recommendations runs: ranking.csv, ranking.md and the NDCG@k figure.

    Parameters
    ----------
    lists : dict
        Name -> [list file of each replicate] (one for a baseline).
    kinds, objectives : dict
        Name -> "model" / "baseline", and what it was trained on (shown in the table).
    """
    from movierec.reports.canvas import save_figure

    ks = [int(k) for k in ks]
    movies = read_movies(movies_path)
    train = evaluation.read_part(train_path)
    test = evaluation.read_part(test_path)
    per_list, curves, first = score_lists(
        lists, train, test, len(movies), ks, relevant_rating, curve_k
    )
    table = summary_table(per_list, kinds, objectives, first, ks)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    n_list = int(read_list(next(iter(lists.values()))[0])["rank"].max())
    evaluated = int(per_list["n_users_evaluated"].iloc[0])
    lines = ranking_markdown(table, ks, relevant_rating, n_list, evaluated, dataset, split)
    ours = table[table["kind"] == "model"]
    if len(ours):
        best = ours.loc[ours[f"ndcg@{ks[0]}"].idxmax(), "list"]
        lines += examples_markdown(
            best, lists[best][0], train, test, movies, int(example_users), relevant_rating
        )
    write_text(md_path, "\n".join(lines))
    save_figure(ndcg_figure(curves, kinds, dataset), png_path, svg_path)
    log.info("scored %d lists on %d evaluated users", len(per_list), evaluated)
    return table
