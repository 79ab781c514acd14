"""Fetch a release's files, verify them, and unpack archives safely.

A release is a list of files, each ``{"url": ..., "sha256": ..., "md5": ...}``
(checksums may be null). `download_release` fetches them over http(s) or from
``file://`` URLs, or from a `mirror` that holds the same files under their
official names, and builds the output directory beside its final place so that
a failure at any step (network, checksum, unsafe or corrupt archive) leaves
nothing behind where the workflow looks for it.
"""

import collections
import contextlib
import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# A progress line at least this often (seconds), besides one per tenth of a known size.
PROGRESS_EVERY_S = 10.0
DEFAULT_MAX_EXTRACTED_BYTES = 20_000_000_000
DEFAULT_WARN_EXTRACTED_BYTES = 2_000_000_000
DEFAULT_MAX_COMPRESSION_RATIO = 100.0
# Members, and archives, that expand to less than this are not held to the ratio: a
# small file that compresses very well is harmless, and text of a few kB often does.
RATIO_EXEMPT_BYTES = 1 << 20
DEFAULT_DEADLINE_S = 21_600.0
DEFAULT_MIN_BYTES_PER_S = 1024.0
DEFAULT_RATE_WINDOW_S = 60.0
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
    deadline_s=DEFAULT_DEADLINE_S,
    min_bytes_per_s=DEFAULT_MIN_BYTES_PER_S,
    rate_window_s=DEFAULT_RATE_WINDOW_S,
    max_compression_ratio=DEFAULT_MAX_COMPRESSION_RATIO,
    warn_extracted_bytes=DEFAULT_WARN_EXTRACTED_BYTES,
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
    deadline_s : float
        Longest an attempt may take, connecting included; past it the attempt
        fails (and is retried). A timer shuts the connection down, so a server
        that trickles bytes cannot keep a read going.
    min_bytes_per_s : float
        Fail an attempt whose bytes over the last `rate_window_s` seconds average
        less than this (0 turns the check off). Retried like a timeout.
    rate_window_s : float
        The sliding window of `min_bytes_per_s`, in seconds; the check starts
        once an attempt is this old.
    max_compression_ratio : float
        Refuse a member, or an archive, that expands more than this many times
        (uncompressed over compressed size), judged from the central directory
        and from the bytes written. Entries under `RATIO_EXEMPT_BYTES`
        uncompressed are exempt.
    warn_extracted_bytes : int
        Log a warning when a release's archives extract to more than this.

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
    positive = {
        "max_extracted_bytes": max_extracted_bytes,
        "deadline_s": deadline_s,
        "rate_window_s": rate_window_s,
        "max_compression_ratio": max_compression_ratio,
        "warn_extracted_bytes": warn_extracted_bytes,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ValueError(f"{key} must be positive, got {value!r}")
    if not min_bytes_per_s >= 0:
        raise ValueError(f"min_bytes_per_s must be 0 (off) or positive, got {min_bytes_per_s!r}")
    if mirror is not None and not str(mirror).strip():
        mirror = None
    pace = {
        "deadline_s": deadline_s,
        "min_bytes_per_s": min_bytes_per_s,
        "rate_window_s": rate_window_s,
    }

    dest = Path(dest_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = None
    try:
        # Inside the try, so that a signal raising right after it is made still cleans up.
        build = _sibling_dir(dest, "tmp")
        limits = _Extraction(max_extracted_bytes, max_compression_ratio, warn_extracted_bytes)
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
                pace=pace,
            )
            names.append(name)
            if _is_zip(target):
                _extract_zip(target, build, limits, reserved=set(names))
        _move_into_place(build, dest)
    except BaseException:
        if build is not None:
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


def _fetch_verified(source, target, spec, *, from_mirror, retries, timeout_s, backoff_s, pace):
    """Stream `source` to a temporary name beside `target`, verify, then rename."""
    part = target.with_name(f".{target.name}.part")
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            digests, size = _fetch_once(source, part, timeout_s, pace)
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


def _fetch_once(source, part, timeout_s, pace):
    """One attempt: copy `source` into `part`, hashing on the way.

    Raises `_Retryable` for failures another attempt may fix (including a missed
    deadline or too low a rate, see `_Attempt`) and `DownloadError` for those it
    will not (404, a missing local file, a bad certificate).
    """
    attempt = _Attempt(source, **pace)
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if scheme == "file" or scheme not in URL_SCHEMES:
        path = _local_path(source) if scheme == "file" else Path(source)
        try:
            with attempt, open(path, "rb") as stream:
                attempt.total = path.stat().st_size
                return _copy_hashing(stream, part, attempt)
        except FileNotFoundError as err:
            raise DownloadError(
                f"{source} does not exist ({path}); check the URL or the `mirror` option."
            ) from err
        except IsADirectoryError as err:
            raise DownloadError(f"{source} is a directory, not a file ({path}).") from err
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        with attempt, _opener(attempt).open(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            attempt.total = total = int(length) if length and length.isdigit() else None
            digests, size = _copy_hashing(response, part, attempt)
    except (OSError, http.client.HTTPException) as err:
        if attempt.expired:  # the deadline timer shut the connection down
            raise attempt.deadline_error() from err
        failure = _classify(err, source, timeout_s)
        if failure is None:
            raise
        raise failure from err
    if total is not None and size != total:
        raise _Retryable(f"connection closed after {size} of {total} bytes")
    return digests, size


def _classify(err, source, timeout_s):
    """The `_Retryable` or `DownloadError` for a network error, or None for others."""
    if isinstance(err, urllib.error.HTTPError):
        if err.code in RETRY_STATUSES:
            return _Retryable(f"HTTP {err.code} {err.reason}")
        return DownloadError(
            f"{source} answered HTTP {err.code} {err.reason}; not retried (the file is "
            "not there, or the URL or `mirror` is wrong)."
        )
    if isinstance(err, urllib.error.URLError):
        if isinstance(err.reason, ssl.SSLCertVerificationError):
            return DownloadError(
                f"TLS certificate of {source} could not be verified: {err.reason}. {MIRROR_HINT}"
            )
        return _Retryable(f"{type(err.reason).__name__}: {err.reason}")
    if isinstance(err, TimeoutError):
        return _Retryable(f"timed out after {timeout_s} s")
    if isinstance(err, (ConnectionError, http.client.HTTPException)):
        return _Retryable(f"{type(err).__name__}: {err}")
    return None


def _opener(attempt):
    """A urllib opener whose connections `attempt` can shut down at its deadline."""

    class Watched:
        def do_open(self, http_class, req, **kwargs):
            def connection(*args, **kw):
                conn = http_class(*args, **kw)
                connect = conn.connect

                def watched_connect():
                    connect()
                    attempt.watch(conn.sock)

                conn.connect = watched_connect
                return conn

            return super().do_open(connection, req, **kwargs)

    class HTTP(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPS(Watched, urllib.request.HTTPSHandler):
        pass

    return urllib.request.build_opener(HTTP, HTTPS)


class _Attempt:
    """One attempt's clock: its deadline, its minimum rate, and its progress lines.

    `update` runs after every read and raises `_Retryable` when the attempt is past
    `deadline_s` or its last `rate_window_s` seconds brought less than
    `min_bytes_per_s` on average. Reads return as soon as any bytes arrive, so a
    trickle gets here; what cannot (a server trickling its headers, or pausing just
    under the socket timeout) is cut by a timer that shuts the watched sockets down
    at the deadline. Used as a context manager around the attempt.
    """

    def __init__(self, source, deadline_s, min_bytes_per_s, rate_window_s):
        self.source = source
        self.deadline_s = deadline_s
        self.min_bytes_per_s = min_bytes_per_s
        self.rate_window_s = rate_window_s
        self.total = None
        self.size = 0
        self.started = self.last_log = time.monotonic()
        self.samples = collections.deque([(self.started, 0)])  # (time, size), thinned
        self.next_decile = 1
        self.expired = False
        self._lock = threading.Lock()
        self._sockets = []
        self._closed = False
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        with self._lock:
            self._closed = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
        return False

    def watch(self, sock):
        """Shut `sock`'s connection down at the deadline.

        Through a duplicate descriptor: shutting that down ends the connection for
        every descriptor of it, TLS included, without touching the caller's object.
        """
        dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        with self._lock:
            if self._closed:
                dup.close()
                return
            self._sockets.append(dup)
            if self.expired:
                _shutdown(dup)

    def _expire(self):
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def _so_far(self):
        of = f" of {_size(self.total)}" if self.total is not None else ""
        return f"{_size(self.size)} ({self.size} bytes){of} received"

    def deadline_error(self):
        return _Retryable(
            f"no complete file within download.deadline_s = {self.deadline_s:g} s, "
            f"{self._so_far()}; raise download.deadline_s if the link is just slow"
        )

    def update(self, nbytes):
        """Count `nbytes` more; raise `_Retryable` past a limit; log progress when due."""
        self.size += nbytes
        now = time.monotonic()
        if self.expired or now - self.started > self.deadline_s:
            raise self.deadline_error()
        window = self.rate_window_s
        if now - self.samples[-1][0] >= window / 20:
            self.samples.append((now, self.size))
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        since, size_then = self.samples[0]
        span = now - since
        rate = (self.size - size_then) / span if span > 0 else 0.0
        if self.min_bytes_per_s and span >= window and rate < self.min_bytes_per_s:
            raise _Retryable(
                f"too slow: {self.size - size_then} bytes in the last {span:.0f} s "
                f"({rate:.1f} bytes/s), under download.min_bytes_per_s = "
                f"{self.min_bytes_per_s:g}, with {self._so_far()}; lower "
                "download.min_bytes_per_s (0 turns the check off) or raise "
                "download.rate_window_s if the link is just slow"
            )
        total = self.total
        decile = bool(total) and self.size * 10 >= self.next_decile * total
        if decile or now - self.last_log >= PROGRESS_EVERY_S:
            if total:
                self.next_decile = self.size * 10 // total + 1
                logger.info(
                    "%s: %s of %s, %s/s (%d%%)",
                    self.source,
                    _size(self.size),
                    _size(total),
                    _size(rate),
                    100 * self.size // total,
                )
            else:
                logger.info("%s: %s so far, %s/s", self.source, _size(self.size), _size(rate))
            self.last_log = now

    def finished(self):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        logger.info(
            "%s: %s in %.1f s (%s/s)",
            self.source,
            _size(self.size),
            elapsed,
            _size(self.size / elapsed),
        )


def _shutdown(sock):
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _local_path(file_url):
    """The filesystem path of a file:// URL (host, if any, must be local)."""
    parsed = urllib.parse.urlparse(file_url)
    if parsed.netloc not in ("", "localhost"):
        raise DownloadError(f"{file_url}: file:// URLs on another host are not supported.")
    return Path(urllib.request.url2pathname(parsed.path))


def _copy_hashing(stream, part, attempt):
    """Copy `stream` into `part`, returning ({sha256, md5}, bytes); `attempt` keeps time.

    `read1` returns whatever has arrived instead of waiting for a whole chunk, so a
    slow server cannot hide inside one read from the deadline and rate checks.
    """
    read = getattr(stream, "read1", stream.read)
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(part, "wb") as out:
        while chunk := read(CHUNK_BYTES):
            out.write(chunk)
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            attempt.update(len(chunk))
    if attempt.expired:  # the end of the stream was the deadline timer's doing
        raise attempt.deadline_error()
    attempt.finished()
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}, size


def _size(n):
    """A byte count for people: 512 B, 3.4 KiB, 12.0 MiB, 1.20 GiB."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    if n < 1 << 30:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**30:.2f} GiB"


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


class _Extraction:
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
            _size(total),
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


def _extract_zip(archive, root, limits, reserved):
    """Extract `archive` into `root` after checking every member; raise ArchiveError.

    `limits` is the release's `_Extraction`, shared across its archives.
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
            logger.info("%s: extracting %d members, %s", name, len(members), _size(declared))
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
    while chunk := src.read(CHUNK_BYTES):
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
    """Rename the finished `build` directory to `dest`, replacing what is there.

    A non-empty `dest` is set aside first and put back if the swap is interrupted
    (an exception, or SIGTERM made one), so it is never lost half-way.
    """
    if dest.is_dir() and not dest.is_symlink():
        if not any(dest.iterdir()):
            dest.rmdir()
        else:
            old = _sibling_dir(dest, "old")
            try:
                os.replace(dest, old / dest.name)
                logger.info("replacing the previous contents of %s", dest)
                os.replace(build, dest)
            except BaseException:
                if not dest.exists() and (old / dest.name).exists():
                    os.replace(old / dest.name, dest)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
            return
    elif dest.exists() or dest.is_symlink():
        raise ValueError(f"{dest} exists and is not a directory; remove it first.")
    os.replace(build, dest)
