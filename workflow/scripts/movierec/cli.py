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
import math
import re
import sys
from pathlib import Path

import numpy as np

#: Title column width of the printed tables.
TITLE_WIDTH = 36
#: What a ratings file's lines must look like, for error messages.
CSV_FORMAT = "`movieId,rating` with an integer movieId and a number rating"
#: A movieId as the release writes it (int() would also take "1_0" or "+1").
_INTEGER = re.compile(r"[0-9]+")


class InputError(Exception):
    """Bad input the user can fix; `main` prints the message as one line and exits 1."""


# --- the model directory and the files it names -------------------------------------------


class ModelDir:
    """A trained model and the files its model.json names, resolved and checked.

    Parameters
    ----------
    path : path
        A directory holding ``model.pt`` and ``model.json``.
    """

    def __init__(self, path):
        from movierec import checkpoint

        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(
                f"{self.path}: not a directory (MODEL_DIR holds model.pt and model.json)"
            )
        for name in ("model.pt", "model.json"):
            if not (self.path / name).is_file():
                raise InputError(
                    f"{self.path}: no {name} here; MODEL_DIR is a directory the train_model rule "
                    "wrote, holding model.pt and model.json "
                    "(e.g. results/ml-latest-small/random/models/dot/rep1)"
                )
        self.model, self.meta = checkpoint.load_model(self.path / "model.pt")
        self.arch = self.meta["arch"]
        self.y_range = self.model.output.y_range
        scale = self.meta.get("rating_scale")
        self.rating_scale = None if scale is None else tuple(float(v) for v in scale)
        self._movies = None

    def resolve(self, key, what):
        """The file model.json names under `key`: absolute, else from cwd, else above MODEL_DIR."""
        json_path = self.path / "model.json"
        value = self.meta.get(key)
        if not value:
            raise InputError(f"{json_path}: no `{key}` entry naming the {what}")
        recorded = Path(value)
        if recorded.is_absolute():
            candidates = [recorded]
        else:
            candidates = [Path.cwd() / recorded]
            candidates += [parent / recorded for parent in self.path.resolve().parents]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        where = "" if recorded.is_absolute() else " in the current directory or above MODEL_DIR"
        raise InputError(
            f"{json_path}: the {what} {recorded} (`{key}`) is not found{where}; "
            "run from the project root where snakemake ran, or rebuild it"
        )

    def users(self):
        """users.parquet: ``userId`` per user index, checked against the model's rows."""
        import pandas as pd

        path = self.resolve("users", "users id map")
        table = pd.read_parquet(path, columns=["user", "userId"])
        self._check_index(path, table["user"].to_numpy(), self.meta["n_users"], "user")
        return path, table["userId"].to_numpy()

    def movies(self):
        """movies.parquet (`reports.inputs.read_movies`), checked against the model's rows."""
        if self._movies is None:
            from movierec.reports.inputs import read_movies

            path = self.resolve("movies", "movies id map")
            table = read_movies(path)
            self._check_index(path, table["movie"].to_numpy(), self.meta["n_movies"], "movie")
            self._movies = (path, table)
        return self._movies

    def _check_index(self, path, index, n_rows, name):
        """Row i of the model's table must be the id map's `name` i, for every row."""
        if len(index) != n_rows:
            raise InputError(
                f"{path}: {len(index)} {name}s, but the model in {self.path} has {n_rows} "
                f"{name} rows; is it another release's id map?"
            )
        if not np.array_equal(index, np.arange(n_rows)):
            bad = int(np.flatnonzero(index != np.arange(n_rows))[0])
            raise InputError(
                f"{path}: row {bad} has {name}={index[bad]}, expected {bad} "
                "(the index must be contiguous from 0 in row order)"
            )

    def rated_movies(self, user):
        """Movie indices `user` rated in the model's train and validation parts."""
        import pyarrow.parquet as pq

        parts = []
        for key, what in (("train", "training split"), ("val", "validation split")):
            path = self.resolve(key, what)
            table = pq.read_table(path, columns=["user", "movie"], filters=[("user", "==", user)])
            parts.append(table.column("movie").to_numpy().astype(np.int64))
        return np.unique(np.concatenate(parts))

    def movie_row(self, movie_id, where="--movie"):
        """The row of `movie_id` in movies.parquet, or an InputError naming `where`."""
        path, table = self.movies()
        rows = np.flatnonzero(table["movieId"].to_numpy() == movie_id)
        if not rows.size:
            raise InputError(f"{where}: movieId {movie_id} is not in the model's movies ({path})")
        return int(rows[0])


# --- a new user's ratings file --------------------------------------------------------------


def read_ratings_csv(path, movie_ids, rating_scale):
    """A new user's ``movieId,rating`` lines as (movie rows, ratings), every line checked.

    A first line ``movieId,rating`` is a header; blank lines are skipped.

    Parameters
    ----------
    path : path
    movie_ids : array of int
        ``movieId`` per movie row (movies.parquet).
    rating_scale : (float, float) or None
        The model's rating scale (model.json); a rating outside it is an error.

    Raises
    ------
    InputError
        Naming the file and line: a missing file, a line that is not
        `CSV_FORMAT`, an unknown or repeated movieId, a rating off the scale,
        or a file without ratings.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such ratings file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the ratings file ({err})") from None
    row_of = {int(movie_id): row for row, movie_id in enumerate(movie_ids)}
    first_line = {}  # movieId -> the line that rated it
    movies, ratings = [], []
    header_allowed = True
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""]:
            continue
        is_header = [f.lower() for f in fields] == ["movieid", "rating"]
        if header_allowed and is_header:
            header_allowed = False
            continue
        header_allowed = False
        where = f"{path}, line {number}"
        movie_id, rating = _parse_line(fields, line, where)
        if movie_id not in row_of:
            raise InputError(f"{where}: movieId {movie_id} is not in the model's movies")
        if movie_id in first_line:
            raise InputError(
                f"{where}: movieId {movie_id} is rated again (first on line {first_line[movie_id]})"
            )
        if rating_scale is not None and not rating_scale[0] <= rating <= rating_scale[1]:
            low, high = rating_scale
            raise InputError(
                f"{where}: rating {rating:g} of movieId {movie_id} is outside the model's rating "
                f"scale [{low:g}, {high:g}] (model.json rating_scale)"
            )
        first_line[movie_id] = number
        movies.append(row_of[movie_id])
        ratings.append(rating)
    if not movies:
        raise InputError(f"{path}: no ratings in the file; expected lines of {CSV_FORMAT}")
    return np.asarray(movies, dtype=np.int64), np.asarray(ratings, dtype=np.float64)


def _parse_line(fields, line, where):
    """(movieId, rating) of one split line, or an InputError saying what was expected."""
    if len(fields) != 2 or not all(fields):
        count = len([f for f in fields if f])
        raise InputError(
            f"{where}: expected {CSV_FORMAT}, got {line.strip()!r} "
            f"({count} field{'' if count == 1 else 's'})"
        )
    if not _INTEGER.fullmatch(fields[0]):
        raise InputError(f"{where}: movieId {fields[0]!r} is not an integer; expected {CSV_FORMAT}")
    movie_id = int(fields[0])
    try:
        rating = float(fields[1])
    except ValueError:
        rating = math.nan
    if not math.isfinite(rating):
        raise InputError(f"{where}: rating {fields[1]!r} is not a number; expected {CSV_FORMAT}")
    return movie_id, rating


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
    """The `n` movies nearest to `movie_id` by cosine of ``movie_emb`` rows, as a dict.

    Only movies with at least `min_ratings` ratings (movies.parquet ``n_ratings``)
    are listed: a rarely rated movie's row has barely moved from its random start.
    """
    from movierec.similar import nearest_movies

    _path, movies = model_dir.movies()
    row = model_dir.movie_row(movie_id)
    factors = model_dir.model.movie_emb.weight.detach().cpu().double().numpy()
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
        f"model {result['model']} ({result['arch']}): cosine similarity of movie_emb rows, "
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
        description="Movies nearest to --movie by cosine similarity of movie_emb rows.",
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
