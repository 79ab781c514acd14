"""A row of a parsed file back to its line, and the error every bad input ends in.

The readers parse a file once, with no line bookkeeping; only when a value is
wrong does this module go back to the file's bytes to find the line (or the
first byte that is not UTF-8), so the fast path never pays for messages.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

CHUNK_BYTES = 1 << 24  # how much of a file the line locator holds at once


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


def line_at(data, offset):
    """The 1-based line number and the text of the line holding byte `offset` of `data`."""
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    text = data[start : len(data) if end < 0 else end].rstrip(b"\r")
    return data.count(b"\n", 0, offset) + 1, text.decode("utf-8", errors="replace")


def first_non_utf8(path):
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
                line, text = line_at(part, err.start)
                return lines + line, text, offset + err.start, part[err.start]
            if not block:
                return None
            lines += part.count(b"\n")
            offset += cut
