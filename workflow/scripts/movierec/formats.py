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
"""

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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

# What a failed conversion means to a reader of the error message.
_EXPECTED = {
    "userId": "an integer user id",
    "movieId": "an integer movie id",
    "rating": "a number",
    "timestamp": "an integer timestamp (seconds)",
}
# Strings pyarrow's CSV reader accepts for each type (besides its null spellings).
_VALID = {
    pa.int64(): r"^\s*[+-]?\d{1,18}\s*$",
    pa.int8(): r"^\s*[+-]?\d{1,2}\s*$",
    pa.float32(): r"(?i)^\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf|infinity|nan)\s*$",
    pa.null(): r"^$",
}
_NULLS = pacsv.ConvertOptions().null_values  # pyarrow's defaults: "", "NaN", "null", ...

# One valid multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
# nothing above U+10FFFF). Pure latin-1 text practically never holds one: it
# would take an accented capital or symbol followed by a C1 control or a
# symbol such as `©`.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)

CHUNK_BYTES = 1 << 24  # how much of a file the line locator holds at once
BLOCK_BYTES = 1 << 24  # pyarrow CSV block: fewer, larger chunks than its 1 MiB default


@dataclass(frozen=True)
class Source:
    """Where a table came from, enough to name the line of a row in an error.

    Attributes
    ----------
    path : Path
        The file as it should appear in messages.
    header : bool
        Whether the first non-blank line is a header (row 0 is then line 2+).
    quoted : bool
        Whether ``"`` quotes fields, so that a newline inside quotes does not
        start a new record.
    columns : str
        The expected layout, quoted in messages.
    """

    path: Path
    header: bool
    quoted: bool
    columns: str

    def line_of(self, row):
        """The 1-based line number of data row `row` (0-based, as pyarrow counts)."""
        return self.locate(row)[0]

    def locate(self, row):
        """Line number and text of data row `row` (0-based, as pyarrow counts).

        pyarrow skips blank lines, and a quoted field may span lines, so the
        row index alone is not the line: see `locate_record`.
        """
        return self.locate_record(int(row) + int(self.header))

    def locate_record(self, record):
        """Line number (1-based) and text of record `record` (0-based, header included).

        Scans the file's bytes in chunks with numpy: a line starts a record
        when it is not blank (CRLF counts as a line end) and an even number of
        quote characters came before it. Only error paths call this, so the
        fast path never pays for line bookkeeping.
        """
        seen = 0  # records that started before the current chunk
        lines_before = 0  # complete lines before the current chunk
        parity = 0  # quote characters before the current chunk, mod 2
        carry = b""  # an unfinished line from the previous chunk
        with open(self.path, "rb") as handle:
            while True:
                block = handle.read(CHUNK_BYTES)
                data = carry + block
                if not block:
                    if not data.strip(b"\r"):
                        break
                    data += b"\n"  # a last line without a newline is still a line
                buf = np.frombuffer(data, dtype=np.uint8)
                ends = np.flatnonzero(buf == 10)
                if ends.size == 0:
                    carry = data
                    continue
                carry = data[ends[-1] + 1 :]
                starts = np.concatenate(([0], ends[:-1] + 1))
                length = ends - starts
                has_cr = np.zeros(ends.size, dtype=bool)
                nonempty = length > 0
                has_cr[nonempty] = buf[ends[nonempty] - 1] == 13
                blank = length - has_cr == 0
                if self.quoted:
                    quotes = (buf[: ends[-1] + 1] == 34).view(np.uint8)
                    per_line = np.add.reduceat(quotes, starts, dtype=np.int64)
                    before = parity + np.cumsum(per_line) - per_line
                    inside = before % 2 == 1
                    parity = int(parity + per_line.sum()) % 2
                else:
                    inside = np.zeros(ends.size, dtype=bool)
                hits = seen + np.cumsum(~blank & ~inside)
                found = np.flatnonzero(hits > record)
                if found.size:
                    k = int(found[0])
                    text = data[starts[k] : ends[k] - int(has_cr[k])]
                    return lines_before + k + 1, text.decode("utf-8", errors="replace")
                seen = int(hits[-1])
                lines_before += ends.size
                if not block:
                    break
        raise ValueError(f"{self.path}: has fewer than {record + 1} records")


def first_true(mask):
    """Index of the first true value of a boolean pyarrow array, or None."""
    found = pc.index(pc.fill_null(mask, True), True).as_py()
    return None if found < 0 else found


def fail(source, row, message, expected=None, record=None):
    """Raise the ValueError every bad input ends in: file, line, its text, what was wrong.

    `row` is a data row as pyarrow counts (0-based, header and blank lines not
    counted); pass `record` instead (row=None) to count the header too.
    `expected` defaults to the file's layout.
    """
    line, text = source.locate(row) if record is None else source.locate_record(record)
    raise ValueError(
        f"{source.path}, line {line}: {message} (the line reads {text!r}); "
        f"expected {expected or source.columns}"
    )


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
        names = _csv_header(path, RATINGS_CSV, "userId,movieId,rating[,timestamp]")
        keep = [*RATINGS_CSV, *(["timestamp"] if "timestamp" in names else [])]
        source = Source(path, True, True, ",".join(keep))
        return _read(source, None, RATING_TYPES, keep, ","), source
    if fmt == "dat":
        # `::` as separator: reading with ':' as the delimiter gives empty
        # fields between the values; typing them as null makes pyarrow itself
        # check that they are empty (so `1:2::3::4` is an error, not a shift).
        names = ["userId", "_1", "movieId", "_2", "rating", "_3", "timestamp"]
        types = {**RATING_TYPES, "_1": pa.null(), "_2": pa.null(), "_3": pa.null()}
        source = Source(path, False, False, "UserID::MovieID::Rating::Timestamp")
        table = _read(source, names, types, names, ":")
        return table.select(["userId", "movieId", "rating", "timestamp"]), source
    if fmt == "ml-100k":
        names = ["userId", "movieId", "rating", "timestamp"]
        source = Source(path, False, False, "tab-separated: user item rating timestamp")
        return _read(source, names, RATING_TYPES, names, "\t"), source
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
    data, encoding = _decode(path)
    if fmt == "csv":
        _csv_header(path, MOVIES_CSV, ",".join(MOVIES_CSV))
        source = Source(path, True, True, ",".join(MOVIES_CSV))
        types = {"movieId": pa.int64(), "title": pa.string(), "genres": pa.string()}
        table = _read(source, None, types, list(MOVIES_CSV), ",", data=data, multiline=True)
    elif fmt == "dat":
        source = Source(path, False, False, "MovieID::Title::Genres")
        lines = _read(source, ["line"], {"line": pa.string()}, ["line"], "\x1f", data=data)
        parts = pc.split_pattern(lines["line"], "::", max_splits=2)
        lengths = pc.list_value_length(parts)
        bad = first_true(pc.not_equal(lengths, 3))
        if bad is not None:
            fail(source, bad, f"{lengths[bad].as_py()} `::`-separated fields, not 3")
        raw_ids = pc.list_element(parts, 0)
        table = pa.table(
            {
                "movieId": _to_int(source, "movieId", raw_ids),
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
        raw = _read(source, names, types, names, "|", data=data)
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


def _decode(path):
    """The bytes of a (small) movies file as UTF-8, and the encoding it was in.

    Valid UTF-8 is taken as is; a file without a single valid multi-byte UTF-8
    sequence is latin-1 (the older releases); anything else mixes the two and
    is an error naming the first byte that is not UTF-8.
    """
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError as err:
        utf8 = _UTF8_MULTIBYTE.search(raw)
        if utf8 is None:
            return raw.decode("latin-1").encode("utf-8"), "latin-1"
        line, text = _line_at(raw, err.start)
        utf8_line, _ = _line_at(raw, utf8.start())
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[err.start]:02x} at byte offset {err.start} "
            f"is not valid UTF-8, but line {utf8_line} holds UTF-8 text "
            f"({utf8.group().decode('utf-8')!r}), so the file mixes encodings "
            f"(the line reads {text!r}); expected UTF-8 throughout (save the file as UTF-8)"
        ) from None


def _line_at(data, offset):
    """The 1-based line number and the text of the line holding byte `offset` of `data`."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    text = data[start : len(data) if end < 0 else end].rstrip(b"\r")
    return data.count(b"\n", 0, offset) + 1, text.decode("utf-8", errors="replace")


def _first_non_utf8(path):
    """Line, text, byte offset (0-based) and value of the first byte of `path` not UTF-8.

    Returns None for a valid UTF-8 file. Reads `CHUNK_BYTES` at a time and
    decodes whole lines only (a multi-byte sequence never spans a newline), so
    a large file is scanned in C without being held in memory. Only error
    paths call this.
    """
    lines = 0  # newlines before the current part
    offset = 0  # bytes before the current part
    carry = b""  # an unfinished line from the previous chunk
    with open(path, "rb") as handle:
        while True:
            block = handle.read(CHUNK_BYTES)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            part, carry = data[:cut], data[cut:]
            try:
                part.decode("utf-8")
            except UnicodeDecodeError as err:
                line, text = _line_at(part, err.start)
                return lines + line, text, offset + err.start, part[err.start]
            if not block:
                return None
            lines += part.count(b"\n")
            offset += cut


def _csv_header(path, required, expected):
    """Check the header of a CSV release file; return its column names."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        line = ""
        for line in handle:
            if line.strip():
                break
        lineno = 1
    if not line.strip():
        raise ValueError(f"{path}, line {lineno}: the file is empty; expected a header {expected}")
    names = [name.strip() for name in next(csv.reader([line]))]
    missing = [name for name in required if name not in names]
    if missing:
        header = line.rstrip("\r\n")
        raise ValueError(
            f"{path}, line 1: header {header!r} lacks column(s) {', '.join(missing)}; "
            f"expected {expected}"
        )
    return names


def _read(source, names, types, keep, delimiter, data=None, multiline=False):
    """One pyarrow CSV read with explicit types; on failure, find and name the line.

    `names` are the file's column names when it has no header (None: the
    header gives them); `keep` the columns returned; `data` the file's bytes
    when they were re-encoded (else the file is read from disk).
    """
    read = pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES)
    parse = pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"' if source.quoted else False,
        newlines_in_values=multiline,
    )
    convert = pacsv.ConvertOptions(
        column_types={name: types[name] for name in keep}, include_columns=keep
    )
    target = source.path if data is None else pa.BufferReader(data)
    try:
        return pacsv.read_csv(target, read, parse, convert)
    except pa.ArrowInvalid as err:
        if "Empty CSV file" in str(err):
            raise ValueError(
                f"{source.path}, line 1: the file is empty; expected {source.columns}"
            ) from None
        _diagnose(source, err, read, parse, keep, data)
        raise ValueError(f"{source.path}: {err}; expected {source.columns}") from err
    except pa.ArrowKeyError as err:  # a header column vanished (checked first, but be safe)
        raise ValueError(f"{source.path}, line 1: {err}; expected {source.columns}") from err


_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error to (\w+)")


def _diagnose(source, err, read, parse, keep, data):
    """Turn a pyarrow read error into a ValueError naming the line and the value.

    Runs only after the fast read failed, so it may read the file again.
    """
    target = (lambda: source.path) if data is None else (lambda: pa.BufferReader(data))
    message = str(err)
    if "invalid UTF8" in message:
        _fail_non_utf8(source, data)
        return
    if "Expected" in message and "columns" in message:
        bad = []

        def handler(row):
            bad.append(row)
            return "error"

        slow_read = pacsv.ReadOptions(column_names=read.column_names, use_threads=False)
        slow_parse = pacsv.ParseOptions(
            delimiter=parse.delimiter,
            quote_char=parse.quote_char,
            newlines_in_values=parse.newlines_in_values,
            invalid_row_handler=handler,
        )
        try:
            pacsv.read_csv(
                target(),
                slow_read,
                slow_parse,
                pacsv.ConvertOptions(column_types={}, include_columns=[]),
            )
        except pa.ArrowInvalid:
            pass
        if bad:
            row = bad[0]
            actual, expected = row.actual_columns, row.expected_columns
            sep = {"\t": "tab", ":": "`::`"}.get(parse.delimiter, repr(parse.delimiter))
            if parse.delimiter == ":":  # `a::b` reads as three ':'-separated fields
                actual, expected = (actual + 1) // 2, (expected + 1) // 2
            fail(
                source,
                None,
                f"{actual} {sep}-separated fields, not {expected}",
                record=row.number - 1,
            )
        return
    match = _CONVERSION.search(message)
    if not match:
        return
    names = read.column_names or _csv_header(source.path, (), source.columns)
    column = names[int(match.group(1))] if int(match.group(1)) < len(names) else None
    if column not in keep:
        return
    try:
        strings = pacsv.read_csv(
            target(),
            read,
            parse,
            pacsv.ConvertOptions(column_types={column: pa.string()}, include_columns=[column]),
        )[column]
    except pa.ArrowInvalid as again:  # the value that failed to convert is not even UTF-8
        if "invalid UTF8" in str(again):
            _fail_non_utf8(source, data)
        return
    wanted = {"int64": pa.int64(), "float": pa.float32(), "null": pa.null(), "int8": pa.int8()}.get(
        match.group(2)
    )
    row = _first_invalid(strings, wanted)
    if row is None:
        return
    value = strings[row].as_py()
    if column.startswith("_"):  # the empty field inside a `::` separator
        fail(source, row, f"{value!r} stands inside a `::` separator")
    what = _EXPECTED.get(column, f"a value of type {wanted}")
    fail(source, row, f"{column} {value!r} is not {what}")


def _fail_non_utf8(source, data):
    """Raise the ValueError for a file pyarrow found not to be UTF-8, naming the first bad byte.

    Returns only if no such byte is found (re-encoded `data` is always UTF-8).
    """
    found = _first_non_utf8(source.path) if data is None else None
    if found is not None:
        line, text, offset, byte = found
        raise ValueError(
            f"{source.path}, line {line}: byte 0x{byte:02x} at byte offset {offset} "
            f"is not valid UTF-8 (the line reads {text!r}); expected UTF-8 text "
            f"(ids and ratings are plain ASCII numbers) laid out as {source.columns}"
        ) from None


def _first_invalid(strings, wanted):
    """Index of the first string pyarrow would not convert to `wanted`, or None."""
    pattern = _VALID.get(wanted)
    if pattern is None:
        return None
    ok = pc.or_(pc.match_substring_regex(strings, pattern), pc.is_in(strings, pa.array(_NULLS)))
    if wanted == pa.null():
        ok = pc.equal(strings, "")
    return first_true(pc.invert(ok))


def _to_int(source, column, strings):
    """Cast id strings to int64, naming the first line that is not an integer."""
    row = _first_invalid(strings, pa.int64())
    if row is None:
        row = first_true(pc.is_in(strings, pa.array(_NULLS)))
    if row is not None:
        fail(source, row, f"{column} {strings[row].as_py()!r} is not {_EXPECTED[column]}")
    return pc.cast(pc.utf8_trim_whitespace(strings), pa.int64())
