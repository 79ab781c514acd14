"""The encoding of a movies file: UTF-8, or latin-1 for the older releases, never both.

Movie titles are the only text in a release. ml-1m's movies.dat and ml-100k's
u.item are pure latin-1, the CSV releases UTF-8; a file that mixes the two
fails naming the line and the byte, because decoding it whole as latin-1 would
garble every other accented title.
"""

import re

from movierec.formats.lines import first_non_utf8, line_at

# One valid multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
# nothing above U+10FFFF). Pure latin-1 text practically never holds one: it
# would take an accented capital or symbol followed by a C1 control or a
# symbol such as `©`.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def decode(path):
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
        line, text = line_at(raw, err.start)
        utf8_line, _ = line_at(raw, utf8.start())
        raise ValueError(
            f"{path}, line {line}: byte 0x{raw[err.start]:02x} at byte offset {err.start} "
            f"is not valid UTF-8, but line {utf8_line} holds UTF-8 text "
            f"({utf8.group().decode('utf-8')!r}), so the file mixes encodings "
            f"(the line reads {text!r}); expected UTF-8 throughout (save the file as UTF-8)"
        ) from None


def fail_non_utf8(source, data):
    """Raise the ValueError for a file pyarrow found not to be UTF-8, naming the first bad byte.

    Returns only if no such byte is found (re-encoded `data` is always UTF-8).
    """
    found = first_non_utf8(source.path) if data is None else None
    if found is not None:
        line, text, offset, byte = found
        raise ValueError(
            f"{source.path}, line {line}: byte 0x{byte:02x} at byte offset {offset} "
            f"is not valid UTF-8 (the line reads {text!r}); expected UTF-8 text "
            f"(ids and ratings are plain ASCII numbers) laid out as {source.columns}"
        ) from None
