"""What the command line reads: a model directory, and a new user's ratings file.

Both check everything they read and raise `InputError` with the file, the line
and what was expected; `movierec.cli.main` prints it as one line.
"""

import math
import re
from pathlib import Path

import numpy as np

#: What a ratings file's lines must look like, for error messages.
CSV_FORMAT = "`movieId,rating` with an integer movieId and a number rating"
#: A movieId as the release writes it (int() would also take "1_0" or "+1").
_INTEGER = re.compile(r"[0-9]+")


class InputError(Exception):
    """Bad input the user can fix; `movierec.cli.main` prints it as one line and exits 1."""


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
