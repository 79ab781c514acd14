"""Readers for the MovieLens release formats, one per format, all on pyarrow.

Each reader returns a pyarrow Table with the same column names whatever the
release (`userId`, `movieId`, `rating`, optionally `timestamp` for ratings;
`movieId`, `title`, `genres` for movies) plus a `Source` that can turn a row
index back into a line number of the file. That split keeps the fast path
fast: a file is parsed once, with explicit column types and no Python loop
over rows, and only when something is wrong do we go back to the file to find
the offending line (vectorised too, see `Source.line_of`).

Formats (the `format` key of a registry entry):

- ``csv``: GroupLens CSV with a header, `ratings.csv` ``userId,movieId,rating
  [,timestamp]`` and `movies.csv` ``movieId,title,genres`` (titles may hold
  quoted commas). The 2017 notebook's sample has no timestamp column.
- ``dat``: ml-1m and ml-10m, ``UserID::MovieID::Rating::Timestamp`` and
  ``MovieID::Title::Genres``; ml-1m's movies are latin-1.
- ``ml-100k``: tab-separated `u.data` ``user item rating timestamp`` without a
  header, and pipe-separated latin-1 `u.item` with 19 genre flags.

CRLF line ends are accepted everywhere. Movie files are decoded as UTF-8 when
they are valid UTF-8, and as latin-1 when they hold no valid multi-byte UTF-8
sequence at all (ml-1m's movies.dat and ml-100k's u.item are pure latin-1, the
CSV releases are UTF-8). A file with both, UTF-8 text and a byte that is not
UTF-8, mixes encodings and fails naming the line and the byte: decoding it
whole as latin-1 would garble every other accented title. Ratings files are
numbers only and must be UTF-8 (in practice ASCII).

The modules: `readers` (one reader per format), `typed_csv` (the one typed
pyarrow read every reader makes, and the diagnosis of a failed one), `lines`
(a row back to its line, and the error every bad input ends in) and
`encoding` (UTF-8 or latin-1 movie files).
"""

from movierec.formats.lines import Source, fail, first_true
from movierec.formats.readers import FORMATS, ML100K_GENRES, NO_GENRES, read_movies, read_ratings

__all__ = [
    "FORMATS",
    "ML100K_GENRES",
    "NO_GENRES",
    "Source",
    "fail",
    "first_true",
    "read_movies",
    "read_ratings",
]
