"""Unpack a release's zip archives without trusting them.

A member's name may try to leave the output directory, link elsewhere, or
overwrite a downloaded file; its declared sizes may lie; it may be a zip bomb.
`extract_zip` checks the names and the central directory before writing
anything, and counts the bytes it writes against the same caps, so an archive
that passed its checksum still cannot fill the disk or write outside `root`.
"""

import logging
import os
import re
import stat
import zipfile
import zlib

from movierec.download import sizes
from movierec.download.errors import ArchiveError
from movierec.download.sizes import human_size

logger = logging.getLogger(__name__)

# Members, and archives, that expand to less than this are not held to the ratio: a
# small file that compresses very well is harmless, and text of a few kB often does.
RATIO_EXEMPT_BYTES = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"


def is_zip(path):
    """Zip by name or by magic bytes, so a truncated .zip is still treated as one."""
    if path.suffix.lower() == ".zip":
        return True
    with open(path, "rb") as stream:
        return stream.read(4) == ZIP_MAGIC


def _unsafe_reason(name):
    """Why a member name may not be extracted, or None when it is safe."""
    if "\x00" in name:
        return "contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return "is an absolute path"
    if re.match(r"^[A-Za-z]:", norm):
        return "starts with a drive letter"
    if ".." in norm.split("/"):
        return "has a '..' component"
    if not norm.strip("/"):
        return "is empty"
    return None


def _member_parts(info):
    return [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]


class Extraction:
    """What a release's archives may extract, shared by its archives, and what they used.

    `budget` is a one-item list holding the bytes still allowed under
    `max_bytes`; `warned` is set once the warning about size has been logged.
    """

    def __init__(self, max_bytes, max_ratio, warn_bytes):
        self.max_bytes = int(max_bytes)
        self.budget = [self.max_bytes]
        self.max_ratio = max_ratio
        self.warn_bytes = int(warn_bytes)
        self.warned = False

    @property
    def extracted(self):
        return self.max_bytes - self.budget[0]

    def warn_if_large(self, name, total, how):
        if self.warned or total <= self.warn_bytes:
            return
        self.warned = True
        logger.warning(
            "%s: the release %s %s (%d bytes) extracted, more than "
            "download.warn_extracted_bytes = %d; make sure the disk has room "
            "(the hard cap is download.max_extracted_bytes = %d).",
            name,
            how,
            human_size(total),
            total,
            self.warn_bytes,
            self.max_bytes,
        )


def _too_compressed(expanded, compressed, max_ratio):
    """Whether `expanded` bytes from `compressed` break the ratio (small ones never do)."""
    return expanded > RATIO_EXEMPT_BYTES and expanded > max_ratio * max(compressed, 1)


def _ratio_error(what, expanded, compressed, max_ratio, detail):
    """`detail` says what the two sizes are, with {expanded} and {compressed} in it."""
    sizes = detail.format(expanded=expanded, compressed=compressed)
    return ArchiveError(
        f"Refusing to extract {what}: it expands {expanded / max(compressed, 1):.0f} times "
        f"({sizes}), more than download.max_compression_ratio = {max_ratio:g}. Zip bombs "
        "look like this; if you trust the archive, raise download.max_compression_ratio."
    )


def extract_zip(archive, root, limits, reserved):
    """Extract `archive` into `root` after checking every member; raise ArchiveError.

    `limits` is the release's `Extraction`, shared across its archives.
    `reserved` are the downloaded files' names, which no member may overwrite.
    """
    name = archive.name
    max_ratio = limits.max_ratio
    try:
        archive_bytes = archive.stat().st_size
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            declared, seen = 0, set()
            for info in members:
                reason = _unsafe_reason(info.filename)
                mode = info.external_attr >> 16
                if reason is None and stat.S_ISLNK(mode):
                    reason = "is a symbolic link"
                parts = _member_parts(info) if reason is None else []
                key = "/".join(parts)
                if reason is None and key in seen:
                    reason = "appears twice"
                if reason is None and parts[0] in reserved:
                    reason = "would overwrite a downloaded file"
                if reason:
                    raise ArchiveError(
                        f"Refusing to extract {name}: member {info.filename!r} {reason}. "
                        "The archive may be malicious or damaged; nothing was extracted."
                    )
                seen.add(key)
                declared += info.file_size
            budget = limits.budget
            if declared > budget[0]:
                raise ArchiveError(
                    f"Refusing to extract {name}: its central directory declares "
                    f"{declared} bytes uncompressed, more than the {budget[0]} left under "
                    "download.max_extracted_bytes."
                )
            for info in members:
                if _too_compressed(info.file_size, info.compress_size, max_ratio):
                    raise _ratio_error(
                        f"{name}: member {info.filename!r}",
                        info.file_size,
                        info.compress_size,
                        max_ratio,
                        "{expanded} bytes from {compressed} compressed, per the central directory",
                    )
            if _too_compressed(declared, archive_bytes, max_ratio):
                raise _ratio_error(
                    f"{name} (all members together)",
                    declared,
                    archive_bytes,
                    max_ratio,
                    "{expanded} bytes from an archive of {compressed}, per the central directory",
                )
            limits.warn_if_large(name, limits.extracted + declared, "will have")
            logger.info("%s: extracting %d members, %s", name, len(members), human_size(declared))
            written = 0
            for info in members:
                target = root.joinpath(*_member_parts(info))
                if not _inside(target, root):
                    raise ArchiveError(f"Refusing to extract {name}: {info.filename!r} escapes.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    written += _copy_capped(
                        src,
                        dst,
                        budget,
                        f"{name}: member {info.filename!r}",
                        compressed=info.compress_size,
                        max_ratio=max_ratio,
                    )
                if _too_compressed(written, archive_bytes, max_ratio):
                    raise _ratio_error(
                        f"{name} (all members together)",
                        written,
                        archive_bytes,
                        max_ratio,
                        "{expanded} bytes written from an archive of {compressed}",
                    )
                limits.warn_if_large(name, limits.extracted, "has")
    except ArchiveError:
        raise
    except (NotADirectoryError, IsADirectoryError, FileExistsError) as err:
        raise ArchiveError(
            f"Refusing to extract {name}: a member's path conflicts with another's ({err})."
        ) from err
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise ArchiveError(
            f"{name} is truncated or corrupt ({type(err).__name__}: {err}). Download it "
            "again; if it came from a mirror, replace the mirror's copy."
        ) from err
    logger.info("%s: extracted", name)


def _inside(target, root):
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(target)]) == root


def _copy_capped(src, dst, budget, what, compressed=None, max_ratio=None):
    """Copy while counting bytes, so a lying central directory cannot exceed the caps.

    `budget` is the one-item list of bytes still allowed; with `max_ratio`, the
    bytes written may also not exceed that many times `compressed`. Returns the
    bytes written.
    """
    written = 0
    while chunk := src.read(sizes.CHUNK_BYTES):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise ArchiveError(
                f"Refusing to extract {what}: the bytes written exceed "
                "download.max_extracted_bytes (the sizes in the archive understate them)."
            )
        written += len(chunk)
        if max_ratio is not None and _too_compressed(written, compressed, max_ratio):
            detail = "{expanded} bytes written from {compressed} compressed"
            raise _ratio_error(what, written, compressed, max_ratio, detail)
        dst.write(chunk)
    return written
