"""One reader per release format: ratings and movies files as tables of one layout.

Each reader returns a pyarrow Table with the same column names whatever the
release, plus the `Source` that names lines in errors; the formats are listed
in `movierec.formats`.
"""

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from movierec.formats.encoding import decode
from movierec.formats.lines import Source, fail, first_true
from movierec.formats.typed_csv import csv_header, read_typed, to_int

log = logging.getLogger(__name__)

FORMATS = ("csv", "dat", "ml-100k")

# Genre names in the order of ml-100k's u.genre (the 19 flags of u.item).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRES = "(no genres listed)"  # what the CSV releases write for a movie without genres

RATINGS_CSV = ("userId", "movieId", "rating")
# Ids are read as int64 (any release id fits), ratings as float32 (the stored type).
RATING_TYPES = {
    "userId": pa.int64(),
    "movieId": pa.int64(),
    "rating": pa.float32(),
    "timestamp": pa.int64(),
}
MOVIES_CSV = ("movieId", "title", "genres")


def read_ratings(fmt, path):
    """Read a ratings file of release format `fmt`.

    Returns
    -------
    (pyarrow.Table, Source)
        Columns `userId` (int64), `movieId` (int64), `rating` (float32) and,
        when the release has them, `timestamp` (int64). Rows in file order.
        Empty ids or ratings come back as nulls for the caller to reject with
        the line; values that are not numbers fail here with the line.
    """
    path = Path(path)
    if fmt == "csv":
        names = csv_header(path, RATINGS_CSV, "userId,movieId,rating[,timestamp]")
        keep = [*RATINGS_CSV, *(["timestamp"] if "timestamp" in names else [])]
        source = Source(path, True, True, ",".join(keep))
        return read_typed(source, None, RATING_TYPES, keep, ","), source
    if fmt == "dat":
        # `::` as separator: reading with ':' as the delimiter gives empty
        # fields between the values; typing them as null makes pyarrow itself
        # check that they are empty (so `1:2::3::4` is an error, not a shift).
        names = ["userId", "_1", "movieId", "_2", "rating", "_3", "timestamp"]
        types = {**RATING_TYPES, "_1": pa.null(), "_2": pa.null(), "_3": pa.null()}
        source = Source(path, False, False, "UserID::MovieID::Rating::Timestamp")
        table = read_typed(source, names, types, names, ":")
        return table.select(["userId", "movieId", "rating", "timestamp"]), source
    if fmt == "ml-100k":
        names = ["userId", "movieId", "rating", "timestamp"]
        source = Source(path, False, False, "tab-separated: user item rating timestamp")
        return read_typed(source, names, RATING_TYPES, names, "\t"), source
    raise ValueError(f"unknown ratings format {fmt!r}; expected one of {', '.join(FORMATS)}")


def read_movies(fmt, path):
    """Read a movies file of release format `fmt`.

    Returns
    -------
    (pyarrow.Table, Source)
        Columns `movieId` (int64), `title` (string) and `genres` (string,
        `|`-separated as in the CSV releases). Rows in file order.
    """
    path = Path(path)
    data, encoding = decode(path)
    if fmt == "csv":
        csv_header(path, MOVIES_CSV, ",".join(MOVIES_CSV))
        source = Source(path, True, True, ",".join(MOVIES_CSV))
        types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
        table = read_typed(source, None, types, list(MOVIES_CSV), ",", data=data, multiline=True)
    elif fmt == "dat":
        source = Source(path, False, False, "MovieID::Title::Genres")
        lines = read_typed(source, ["line"], {"line": pa.string()}, ["line"], "\x1f", data=data)
        parts = pc.split_pattern(lines["line"], "::", max_splits=2)
        lengths = pc.list_value_length(parts)
        bad = first_true(pc.not_equal(lengths, 3))
        if bad is not None:
            fail(source, bad, f"{lengths[bad].as_py()} `::`-separated fields, not 3")
        raw_ids = pc.list_element(parts, 0)
        table = pa.table(
            {
                "movieId": to_int(source, "movieId", raw_ids),
                "title": pc.list_element(parts, 1),
                "genres": pc.list_element(parts, 2),
            }
        )
    elif fmt == "ml-100k":
        names = [
            "movieId",
            "title",
            "release_date",
            "video_release_date",
            "imdb_url",
            *(f"g{k}" for k in range(len(ML100K_GENRES))),
        ]
        types = {name: pa.string() for name in names[1:5]}
        types.update({f"g{k}": pa.int8() for k in range(len(ML100K_GENRES))})
        types["movieId"] = pa.int64()
        source = Source(
            path,
            False,
            False,
            "|-separated: id|title|release date|video release date|IMDb URL|19 genre flags (0/1)",
        )
        raw = read_typed(source, names, types, names, "|", data=data)
        flags = []
        for k, genre in enumerate(ML100K_GENRES):
            flag = raw[f"g{k}"]
            bad = first_true(pc.invert(pc.is_in(flag, pa.array([0, 1], pa.int8()))))
            if bad is not None:
                fail(
                    source,
                    bad,
                    f"genre flag {k + 1} ({genre}) is {flag[bad].as_py()!r}, not 0 or 1",
                )
            flags.append(pc.if_else(pc.equal(flag, 1), genre + "|", ""))
        # Joined with "" and the last "|" trimmed: joining nulls with null_handling=skip
        # returns an empty array when every input is null (pyarrow 26).
        genres = pc.utf8_rtrim(pc.binary_join_element_wise(*flags, ""), characters="|")
        genres = pc.if_else(pc.equal(genres, ""), NO_GENRES, genres)
        table = pa.table({"movieId": raw["movieId"], "title": raw["title"], "genres": genres})
    else:
        raise ValueError(f"unknown movies format {fmt!r}; expected one of {', '.join(FORMATS)}")
    log.info("%s: %d movies (%s)", path, table.num_rows, encoding)
    return table, source
