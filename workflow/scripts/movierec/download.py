"""Fetch a release's files, verify them, and unpack archives safely.

A release is a list of files, each ``{"url": ..., "sha256": ..., "md5": ...}``
(checksums may be null). `download_release` fetches them over http(s) or from
``file://`` URLs, or from a `mirror` that holds the same files under their
official names, and builds the output directory beside its final place so that
a failure at any step (network, checksum, unsafe or corrupt archive) leaves
nothing behind where the workflow looks for it.
"""

import contextlib
import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# Progress lines when the size is unknown (no Content-Length): one per this many bytes.
UNKNOWN_SIZE_LOG_BYTES = 64 << 20
DEFAULT_MAX_EXTRACTED_BYTES = 20_000_000_000
# HTTP statuses worth another attempt: server-side trouble, not a wrong address.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
URL_SCHEMES = ("http", "https", "file")
HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}
ZIP_MAGIC = b"PK\x03\x04"
USER_AGENT = "movierec-download/1 (+python-urllib)"
MIRROR_HINT = (
    "If this machine is offline, point the `mirror` config option at a directory "
    "or base URL holding the release files under their official names, e.g. "
    "`--config mirror=/path/to/dir`."
)


class DownloadError(RuntimeError):
    """A file could not be fetched (network failure, HTTP error, missing source)."""


class ChecksumError(ValueError):
    """A fetched file's digest differs from the one pinned in the registry."""


class ArchiveError(ValueError):
    """An archive is corrupt, truncated, or has a member that is unsafe to extract."""


class _Retryable(Exception):
    """Internal: an attempt failed in a way another attempt may fix."""


def download_release(
    files,
    dest_dir,
    mirror=None,
    retries=4,
    timeout_s=60,
    max_extracted_bytes=DEFAULT_MAX_EXTRACTED_BYTES,
    backoff_s=1.0,
):
    """Fetch `files` into `dest_dir`, verify their checksums, and unpack zips.

    Parameters
    ----------
    files : list of dict
        Each has ``url`` (http, https or file) and optionally ``sha256`` and
        ``md5`` (hex strings or None). Both are checked when given; when neither
        is, a warning logs the computed digests so the user can pin them.
    dest_dir : str or Path
        Output directory. It receives every file under its official basename,
        and zip archives are extracted beside themselves (the archive is kept,
        so the checksum can be re-verified later). It is built in a sibling
        temporary directory and renamed into place at the end, so a failure
        leaves no `dest_dir`. An existing empty `dest_dir` (Snakemake may make
        one) is replaced; so is an existing non-empty one, but only on success.
    mirror : str or None
        A local directory, or a base URL (http, https, file), holding the files
        under their official basenames. When set, nothing is fetched from the
        registry URLs. It changes where bytes come from, never which bytes are
        accepted: the checksums still apply.
    retries : int
        Further attempts after a failed one, for connection errors, timeouts and
        HTTP 5xx/408/429. A 4xx answer or a checksum mismatch is not retried.
    timeout_s : float
        Socket timeout of each attempt (connect and each read), in seconds.
    max_extracted_bytes : int
        Refuse archives whose members add up to more than this, judged from the
        central directory before extracting and again from the bytes written.
    backoff_s : float
        Wait before the first retry; it doubles with each further one.

    Returns
    -------
    list of Path
        The fetched files, at their final place in `dest_dir`.

    Raises
    ------
    DownloadError
        A file could not be fetched; for network failures the message names the
        `mirror` option.
    ChecksumError
        A digest differs from the registry's (message: file, expected, actual).
    ArchiveError
        A zip is truncated, corrupt, too large, or has an unsafe member.
    ValueError
        Malformed arguments (no url, a checksum that is not hex, ...).
    """
    files = _check_files(files)
    if int(retries) != retries or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    if not max_extracted_bytes > 0:
        raise ValueError(f"max_extracted_bytes must be positive, got {max_extracted_bytes!r}")
    if mirror is not None and not str(mirror).strip():
        mirror = None

    dest = Path(dest_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = _sibling_dir(dest, "tmp")
    try:
        budget = [int(max_extracted_bytes)]
        names = []
        for spec in files:
            name = spec["name"]
            source = _source(spec["url"], name, mirror)
            target = build / name
            _fetch_verified(
                source,
                target,
                spec,
                from_mirror=mirror is not None,
                retries=int(retries),
                timeout_s=timeout_s,
                backoff_s=backoff_s,
            )
            names.append(name)
            if _is_zip(target):
                _extract_zip(target, build, budget, reserved=set(names))
        _move_into_place(build, dest)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        # An empty dest_dir is only a placeholder (Snakemake may create it):
        # leave no trace of a failed run.
        with contextlib.suppress(OSError):
            if dest.is_dir() and not any(dest.iterdir()):
                dest.rmdir()
        raise
    logger.info("release ready in %s: %s", dest, ", ".join(names))
    return [dest / name for name in names]


def official_name(url):
    """The basename of a URL's path, unquoted: the name files have in a mirror."""
    path = urllib.parse.urlparse(url).path
    name = urllib.parse.unquote(PurePosixPath(path).name)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"Cannot tell a file name from the URL {url!r}: its path has none.")
    return name


def _check_files(files):
    """Normalise the release list and reject malformed entries before any download."""
    if isinstance(files, dict):
        files = [files]
    if not files:
        raise ValueError("download_release got an empty list of files.")
    checked, seen = [], {}
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not entry.get("url"):
            raise ValueError(f"Release file #{i} has no `url`: {entry!r}")
        url = str(entry["url"])
        scheme = urllib.parse.urlparse(url).scheme.lower()
        if scheme not in URL_SCHEMES:
            raise ValueError(
                f"Release file #{i} has URL {url!r} with scheme {scheme!r}; "
                f"expected one of {', '.join(URL_SCHEMES)}."
            )
        name = official_name(url)
        if name in seen:
            raise ValueError(
                f"Release files {seen[name]!r} and {url!r} share the name {name!r}; "
                "they would overwrite each other."
            )
        seen[name] = url
        spec = {"url": url, "name": name}
        for algo in ("sha256", "md5"):
            value = entry.get(algo)
            if value is None or str(value).strip() == "":
                spec[algo] = None
                continue
            value = str(value).strip().lower()
            if not HEX[algo].match(value):
                raise ValueError(
                    f"The {algo} given for {name} ({entry.get(algo)!r}) is not a hex "
                    f"digest of {len(hashlib.new(algo).hexdigest())} characters."
                )
            spec[algo] = value
        checked.append(spec)
    return checked


def _source(url, name, mirror):
    """Where to read `name` from: the registry URL, or the mirror's copy."""
    if mirror is None:
        return url
    mirror = str(mirror).strip()
    if urllib.parse.urlparse(mirror).scheme.lower() in URL_SCHEMES:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(name)
    base = Path(mirror).expanduser()
    if not base.is_dir():
        raise DownloadError(
            f"The `mirror` config option is {mirror!r}, which is neither an http(s) or "
            f"file:// base URL nor an existing directory (resolved: {base.resolve()})."
        )
    return str(base / name)


def _fetch_verified(source, target, spec, *, from_mirror, retries, timeout_s, backoff_s):
    """Stream `source` to a temporary name beside `target`, verify, then rename."""
    part = target.with_name(f".{target.name}.part")
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            digests, size = _fetch_once(source, part, timeout_s)
            break
        except _Retryable as err:
            reason = err.args[0]
            if attempt == attempts:
                raise DownloadError(
                    f"Could not download {spec['name']} from {source} after {attempts} "
                    f"attempt(s); last error: {reason}. The server cannot be reached or "
                    f"keeps failing. {MIRROR_HINT}"
                ) from err.__cause__
            wait = backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.3g s",
                spec["name"],
                attempt,
                attempts,
                reason,
                wait,
            )
            time.sleep(wait)
    _verify(spec, digests, source, from_mirror)
    if target.exists():
        raise ValueError(
            f"{spec['name']} collides with a member extracted from an earlier archive "
            "of the same release."
        )
    os.replace(part, target)
    logger.info("%s: %d bytes from %s, sha256 %s", spec["name"], size, source, digests["sha256"])


def _fetch_once(source, part, timeout_s):
    """One attempt: copy `source` into `part`, hashing on the way.

    Raises `_Retryable` for failures another attempt may fix and `DownloadError`
    for those it will not (404, a missing local file, a bad certificate).
    """
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if scheme == "file" or scheme not in URL_SCHEMES:
        path = _local_path(source) if scheme == "file" else Path(source)
        try:
            with open(path, "rb") as stream:
                return _copy_hashing(stream, part, path.stat().st_size, source)
        except FileNotFoundError as err:
            raise DownloadError(
                f"{source} does not exist ({path}); check the URL or the `mirror` option."
            ) from err
        except IsADirectoryError as err:
            raise DownloadError(f"{source} is a directory, not a file ({path}).") from err
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digests, size = _copy_hashing(response, part, total, source)
    except urllib.error.HTTPError as err:
        if err.code in RETRY_STATUSES:
            raise _Retryable(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(
            f"{source} answered HTTP {err.code} {err.reason}; not retried (the file is "
            "not there, or the URL or `mirror` is wrong)."
        ) from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLCertVerificationError):
            raise DownloadError(
                f"TLS certificate of {source} could not be verified: {err.reason}. {MIRROR_HINT}"
            ) from err
        raise _Retryable(f"{type(err.reason).__name__}: {err.reason}") from err
    except TimeoutError as err:
        raise _Retryable(f"timed out after {timeout_s} s") from err
    except (ConnectionError, http.client.HTTPException) as err:
        raise _Retryable(f"{type(err).__name__}: {err}") from err
    if total is not None and size != total:
        raise _Retryable(f"connection closed after {size} of {total} bytes")
    return digests, size


def _local_path(file_url):
    """The filesystem path of a file:// URL (host, if any, must be local)."""
    parsed = urllib.parse.urlparse(file_url)
    if parsed.netloc not in ("", "localhost"):
        raise DownloadError(f"{file_url}: file:// URLs on another host are not supported.")
    return Path(urllib.request.url2pathname(parsed.path))


def _copy_hashing(stream, part, total, source):
    """Copy `stream` into `part`, returning ({sha256, md5}, bytes) and logging progress."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size, decile, started = 0, 1, time.monotonic()
    next_unknown = UNKNOWN_SIZE_LOG_BYTES
    with open(part, "wb") as out:
        while chunk := stream.read(CHUNK_BYTES):
            out.write(chunk)
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if total:
                if size * 10 >= decile * total:
                    logger.info(
                        "%s: %s of %s (%d%%)", source, _mib(size), _mib(total), 100 * size // total
                    )
                    decile = size * 10 // total + 1
            elif size >= next_unknown:
                logger.info("%s: %s so far", source, _mib(size))
                next_unknown += UNKNOWN_SIZE_LOG_BYTES
    elapsed = max(time.monotonic() - started, 1e-9)
    logger.info(
        "%s: %s in %.1f s (%.1f MiB/s)", source, _mib(size), elapsed, size / elapsed / 2**20
    )
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}, size


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


def _verify(spec, digests, source, from_mirror):
    """Compare digests with the registry; mismatches raise, missing pins warn."""
    checked = [algo for algo in ("sha256", "md5") if spec[algo]]
    for algo in checked:
        if digests[algo] != spec[algo]:
            where = "the mirror's copy" if from_mirror else "the download"
            raise ChecksumError(
                f"Checksum mismatch for {spec['name']} (from {source}): expected {algo} "
                f"{spec[algo]}, got {digests[algo]}. Either {where} is corrupt or "
                "the release changed; if you trust this file, pin the new value under "
                "`datasets:` in a --configfile."
            )
    if checked:
        logger.info("%s: %s verified", spec["name"], " and ".join(checked))
    else:
        logger.warning(
            "%s: no checksum in the registry, so the file is not verified. To pin it, "
            "set sha256: %s (md5: %s) for this file under `datasets:`.",
            spec["name"],
            digests["sha256"],
            digests["md5"],
        )


def _is_zip(path):
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


def _extract_zip(archive, root, budget, reserved):
    """Extract `archive` into `root` after checking every member; raise ArchiveError.

    `budget` is a one-item list holding the bytes still allowed; it is shared
    across the archives of a release. `reserved` are the downloaded files'
    names, which no member may overwrite.
    """
    name = archive.name
    try:
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
            if declared > budget[0]:
                raise ArchiveError(
                    f"Refusing to extract {name}: its central directory declares "
                    f"{declared} bytes uncompressed, more than the {budget[0]} left under "
                    "download.max_extracted_bytes."
                )
            logger.info("%s: extracting %d members, %s", name, len(members), _mib(declared))
            for info in members:
                target = root.joinpath(*_member_parts(info))
                if not _inside(target, root):
                    raise ArchiveError(f"Refusing to extract {name}: {info.filename!r} escapes.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    _copy_capped(src, dst, budget, f"{name}: {info.filename}")
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


def _copy_capped(src, dst, budget, what):
    """Copy while counting bytes, so a lying central directory cannot exceed the cap."""
    while chunk := src.read(CHUNK_BYTES):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise ArchiveError(
                f"Refusing to extract {what}: the bytes written exceed "
                "download.max_extracted_bytes (the sizes in the archive understate them)."
            )
        dst.write(chunk)


def _sibling_dir(dest, kind):
    """A new hidden directory beside `dest` (same filesystem, so renames are atomic).

    Made with mkdir rather than mkdtemp so it gets the usual umask permissions,
    not 0700, once it is renamed to `dest`.
    """
    for _ in range(100):
        path = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.{kind}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temporary directory beside {dest}.")


def _move_into_place(build, dest):
    """Rename the finished `build` directory to `dest`, replacing what is there."""
    if dest.is_dir() and not dest.is_symlink():
        if not any(dest.iterdir()):
            dest.rmdir()
        else:
            old = _sibling_dir(dest, "old")
            os.replace(dest, old / dest.name)
            logger.info("replacing the previous contents of %s", dest)
            os.replace(build, dest)
            shutil.rmtree(old, ignore_errors=True)
            return
    elif dest.exists() or dest.is_symlink():
        raise ValueError(f"{dest} exists and is not a directory; remove it first.")
    os.replace(build, dest)
