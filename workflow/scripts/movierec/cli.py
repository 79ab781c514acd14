"""``movierec``: top-N lists and similar movies from a trained model, on the command line.

::

    movierec recommend MODEL_DIR --user USER_ID [-n 10] [--json]
    movierec recommend MODEL_DIR --ratings my_ratings.csv [-n 10] [--json]
    movierec similar MODEL_DIR --movie MOVIE_ID [-n 10] [--min-ratings 20] [--json]

MODEL_DIR is what the train_model rule writes (``model.pt`` and
``model.json``, e.g. ``results/ml-latest-small/random/models/dot/rep1``).
``model.json`` names the id maps and split files by their paths relative to
the project root where Snakemake ran; a relative path is looked up in the
current directory, then in each directory above MODEL_DIR, so the command
works from the project root and from anywhere else.

A known user's list comes from the trained rows (`recommend.ModelScorer`); a
new user's ratings (``movieId,rating`` lines) are folded in first
(`movierec.foldin`). Either way the movies the user already rated are left
out, and for the dot family each score is split into the global offset, the
user bias, the movie bias and the factor part, which add up to the raw score.

Bad input (an unknown id, a malformed ratings file, a rating off the model's
scale, a model directory without its files) ends with one line on stderr and
exit status 1; usage errors exit 2, as argparse does.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from movierec.cli_inputs import InputError, ModelDir, read_ratings_csv

#: Title column width of the printed tables.
TITLE_WIDTH = 36
# --- recommend --------------------------------------------------------------------------------


def recommend(model_dir, n, user_id=None, ratings_path=None):
    """A top-`n` list for a known user (`user_id`) or a new one (`ratings_path`), as a dict.

    Returns
    -------
    dict
        ``model``, ``arch``, ``y_range``, ``for`` (who the list is for),
        ``method`` (``trained`` rows, or the fold-in's), ``n_excluded``
        (movies left out as already rated) and ``items``: ``rank``,
        ``movieId``, ``title``, ``score`` (the predicted rating), ``raw`` and,
        for the dot family, ``parts`` (``global``, ``user_bias``,
        ``movie_bias``, ``factor``; they add up to ``raw``).
    """
    from movierec import foldin
    from movierec import recommend as rec

    _movies_path, movies = model_dir.movies()
    if user_id is not None:
        users_path, user_ids = model_dir.users()
        rows = np.flatnonzero(user_ids == user_id)
        if not rows.size:
            raise InputError(
                f"--user: userId {user_id} is not in the model's users ({users_path}, "
                f"{len(user_ids)} users); rate some movies and use --ratings for a new user"
            )
        user = int(rows[0])
        seen_movies = model_dir.rated_movies(user)
        scores = foldin.trained_user(model_dir.model, user)
        seen = rec.Seen.from_pairs(np.full(len(seen_movies), user), seen_movies, len(user_ids))
        lists = rec.top_n(rec.ModelScorer(model_dir.model), seen, n, users=[user])
        who = {"userId": int(user_id), "user": user}
        predicted = lists["score"].astype(np.float64)
    else:
        seen_movies, ratings = read_ratings_csv(
            ratings_path, movies["movieId"].to_numpy(), model_dir.rating_scale
        )
        weight_decay = model_dir.meta["settings"].get("weight_decay")
        scores = foldin.fold_in(model_dir.model, seen_movies, ratings, weight_decay=weight_decay)
        seen = rec.Seen.from_pairs(np.zeros(len(seen_movies)), seen_movies, 1)
        lists = rec.top_n(rec.FixedScorer(scores.raw), seen, n, users=[0])
        who = {"ratings": str(ratings_path), "n_ratings": int(len(ratings))}
        predicted = scores.rating(lists["movie"])
    picked = lists["movie"]
    parts = scores.part_table(picked) if scores.parts is not None else None
    items = []
    for i, movie in enumerate(picked):
        item = {
            "rank": int(lists["rank"][i]),
            "movie": int(movie),
            "movieId": int(movies["movieId"].iat[movie]),
            "title": str(movies["title"].iat[movie]),
            "score": float(predicted[i]),
            "raw": float(scores.raw[movie]),
        }
        if parts is not None:
            item["parts"] = {name: float(values[i]) for name, values in parts.items()}
        items.append(item)
    return {
        "model": str(model_dir.path),
        "arch": model_dir.arch,
        "y_range": list(model_dir.y_range) if model_dir.y_range is not None else None,
        "for": who,
        "method": scores.method,
        "n_excluded": int(len(seen_movies)),
        "items": items,
    }


def format_recommend(result):
    """The readable table of a `recommend` result."""
    who = result["for"]
    if "userId" in who:
        subject = f"userId {who['userId']} (trained user {who['user']})"
        excluded = "rated in train and validation"
    else:
        subject = (
            f"the {who['n_ratings']} ratings in {who['ratings']} (folded in: {result['method']})"
        )
        excluded = "rated in the file"
    lines = [
        f"Top {len(result['items'])} for {subject}",
        f"model {result['model']} ({result['arch']}); {result['n_excluded']} movies {excluded} "
        "left out",
    ]
    y_range = result["y_range"]
    if y_range is not None:
        low, high = y_range
        scale = f"score = {low:g} + {high - low:g} * sigmoid(raw) (the output scale, y_range)"
    else:
        scale = "score = raw (no y_range)"
    dot = bool(result["items"]) and "parts" in result["items"][0]
    if dot:
        lines.append(f"raw = global + user_bias + movie_bias + factor (the parts add up); {scale}")
    else:
        lines.append(f"{scale}; an {result['arch']} score does not split into parts")
    header = f"{'rank':>4}  {'movieId':>7}  {'title':<{TITLE_WIDTH}}  {'score':>6}  {'raw':>7}"
    if dot:
        header += f"  {'global':>7}  {'user_b':>7}  {'movie_b':>7}  {'factor':>7}"
    lines += ["", header]
    for item in result["items"]:
        row = (
            f"{item['rank']:>4}  {item['movieId']:>7}  {_cut(item['title']):<{TITLE_WIDTH}}  "
            f"{item['score']:>6.3f}  {item['raw']:>7.3f}"
        )
        if dot:
            p = item["parts"]
            row += (
                f"  {p['global']:>7.3f}  {p['user_bias']:>7.3f}  {p['movie_bias']:>7.3f}  "
                f"{p['factor']:>7.3f}"
            )
        lines.append(row)
    return "\n".join(lines)


# --- similar ----------------------------------------------------------------------------------


def similar(model_dir, movie_id, n, min_ratings):
    """The `n` movies nearest to `movie_id` by cosine of movie vectors, as a dict.

    Only movies with at least `min_ratings` ratings (movies.parquet ``n_ratings``)
    are listed: a rarely rated movie's row has barely moved from its random start.
    """
    from movierec.similar import nearest_movies
    from movierec.vectors import model_vectors

    _path, movies = model_dir.movies()
    row = model_dir.movie_row(movie_id)
    factors, _bias = model_vectors(model_dir.model)
    eligible = movies["n_ratings"].to_numpy() >= min_ratings
    indices, sims = nearest_movies(factors, [row], n, eligible)
    items = [
        {
            "rank": rank,
            "movie": int(movie),
            "movieId": int(movies["movieId"].iat[movie]),
            "title": str(movies["title"].iat[movie]),
            "n_ratings": int(movies["n_ratings"].iat[movie]),
            "similarity": float(sim),
        }
        for rank, (movie, sim) in enumerate(zip(indices[0], sims[0], strict=True), start=1)
        if movie >= 0
    ]
    return {
        "model": str(model_dir.path),
        "arch": model_dir.arch,
        "query": {
            "movie": row,
            "movieId": int(movie_id),
            "title": str(movies["title"].iat[row]),
            "n_ratings": int(movies["n_ratings"].iat[row]),
        },
        "min_ratings": int(min_ratings),
        "items": items,
    }


def format_similar(result):
    """The readable table of a `similar` result."""
    query = result["query"]
    lines = [
        f"Movies most similar to movieId {query['movieId']} {query['title']} "
        f"({query['n_ratings']} ratings)",
        f"model {result['model']} ({result['arch']}): cosine similarity of movie vectors, "
        f"among movies with at least {result['min_ratings']} ratings",
        "",
        f"{'rank':>4}  {'movieId':>7}  {'title':<{TITLE_WIDTH}}  {'ratings':>7}  "
        f"{'similarity':>10}",
    ]
    for item in result["items"]:
        lines.append(
            f"{item['rank']:>4}  {item['movieId']:>7}  {_cut(item['title']):<{TITLE_WIDTH}}  "
            f"{item['n_ratings']:>7}  {item['similarity']:>10.3f}"
        )
    return "\n".join(lines)


def _cut(title):
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 3] + "..."


# --- argument parsing -------------------------------------------------------------------------


def _positive_int(text):
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _count(text):
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def build_parser():
    """The ``movierec`` argument parser (subcommands recommend and similar)."""
    parser = argparse.ArgumentParser(
        prog="movierec",
        description="Top-N lists and similar movies from a model the workflow trained.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = (
        "directory holding model.pt and model.json "
        "(e.g. results/ml-latest-small/random/models/dot/rep1)"
    )
    rec = sub.add_parser(
        "recommend",
        help="best unrated movies for a known user or a new user's ratings",
        description="Top-N unrated movies for a user of the model (--user) or for a new user "
        "folded in from a CSV of movieId,rating lines (--ratings).",
    )
    rec.add_argument("model_dir", metavar="MODEL_DIR", help=model_help)
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=_int, metavar="USER_ID", help="the release's userId")
    who.add_argument(
        "--ratings",
        type=Path,
        metavar="CSV",
        help="a new user's ratings: movieId,rating lines (header optional)",
    )
    rec.add_argument("-n", type=_positive_int, default=10, help="list length (default 10)")
    rec.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sim = sub.add_parser(
        "similar",
        help="movies nearest to one movie by cosine similarity of the embeddings",
        description="Movies nearest to --movie by cosine similarity of movie vectors.",
    )
    sim.add_argument("model_dir", metavar="MODEL_DIR", help=model_help)
    sim.add_argument("--movie", type=_int, required=True, metavar="MOVIE_ID", help="a movieId")
    sim.add_argument("-n", type=_positive_int, default=10, help="movies to list (default 10)")
    sim.add_argument(
        "--min-ratings",
        type=_count,
        default=20,
        metavar="K",
        help="list only movies with at least K ratings (default 20)",
    )
    sim.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def main(argv=None):
    """Run the ``movierec`` command line; returns 0, or exits 1 (bad input) or 2 (usage)."""
    from movierec.foldin import one_thread

    args = build_parser().parse_args(argv)
    try:
        with one_thread():  # one user's work: small operations, faster on one thread
            model_dir = ModelDir(args.model_dir)
            if args.command == "recommend":
                result = recommend(model_dir, args.n, user_id=args.user, ratings_path=args.ratings)
                text = format_recommend(result)
            else:
                result = similar(model_dir, args.movie, args.n, args.min_ratings)
                text = format_similar(result)
    except (InputError, ValueError) as err:
        # ValueError: the library's own checks (checkpoint.CheckpointError, id maps), each
        # naming the file; the message is the whole story, so no traceback.
        print(f"movierec {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
