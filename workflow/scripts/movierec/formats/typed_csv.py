"""One pyarrow CSV read with explicit column types, and what to say when it fails.

Every reader parses its file with a single `read_typed` call: typed columns,
no Python loop over rows. A failure is then diagnosed by reading the file
again more slowly (`_diagnose`) to name the line and the value pyarrow
rejected, which keeps all of that bookkeeping off the fast path.
"""

import csv
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.formats.encoding import fail_non_utf8
from movierec.formats.lines import fail, first_true

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

BLOCK_BYTES = 1 << 24  # pyarrow CSV block: fewer, larger chunks than its 1 MiB default


def csv_header(path, required, expected):
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


def read_typed(source, names, types, keep, delimiter, data=None, multiline=False):
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
        fail_non_utf8(source, data)
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
    names = read.column_names or csv_header(source.path, (), source.columns)
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
            fail_non_utf8(source, data)
        return
    wanted = {"int64": pa.int64(), "float": pa.float32(), "null": pa.null(), "int8": pa.int8()}.get(
        match.group(2)
    )
    row = first_invalid(strings, wanted)
    if row is None:
        return
    value = strings[row].as_py()
    if column.startswith("_"):  # the empty field inside a `::` separator
        fail(source, row, f"{value!r} stands inside a `::` separator")
    what = _EXPECTED.get(column, f"a value of type {wanted}")
    fail(source, row, f"{column} {value!r} is not {what}")


def first_invalid(strings, wanted):
    """Index of the first string pyarrow would not convert to `wanted`, or None."""
    pattern = _VALID.get(wanted)
    if pattern is None:
        return None
    ok = pc.or_(pc.match_substring_regex(strings, pattern), pc.is_in(strings, pa.array(_NULLS)))
    if wanted == pa.null():
        ok = pc.equal(strings, "")
    return first_true(pc.invert(ok))


def to_int(source, column, strings):
    """Cast id strings to int64, naming the first line that is not an integer."""
    row = first_invalid(strings, pa.int64())
    if row is None:
        row = first_true(pc.is_in(strings, pa.array(_NULLS)))
    if row is not None:
        fail(source, row, f"{column} {strings[row].as_py()!r} is not {_EXPECTED[column]}")
    return pc.cast(pc.utf8_trim_whitespace(strings), pa.int64())
