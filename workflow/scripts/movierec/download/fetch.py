"""One file's bytes: from a URL or a mirror, retried, timed, hashed and verified.

Everything that can go wrong on the way in is here: connection errors and
server trouble (retried with doubling waits), a server that trickles bytes
(a deadline and a minimum rate per attempt, see `_Attempt`), and bytes that are
not the registry's (`_verify`). Separate from the release, which decides what to
fetch and where it lands, and from the archive, which decides what to unpack.
"""

import collections
import contextlib
import hashlib
import http.client
import logging
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from movierec.download import sizes
from movierec.download.errors import ChecksumError, DownloadError
from movierec.download.sizes import human_size

logger = logging.getLogger(__name__)

# A progress line at least this often (seconds), besides one per tenth of a known size.
PROGRESS_EVERY_S = 10.0
# HTTP statuses worth another attempt: server-side trouble, not a wrong address.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
URL_SCHEMES = ("http", "https", "file")
USER_AGENT = "movierec-download/1 (+python-urllib)"
MIRROR_HINT = (
    "If this machine is offline, point the `mirror` config option at a directory "
    "or base URL holding the release files under their official names, e.g. "
    "`--config mirror=/path/to/dir`."
)


class _Retryable(Exception):
    """Internal: an attempt failed in a way another attempt may fix."""


def fetch_verified(source, target, spec, *, from_mirror, retries, timeout_s, backoff_s, pace):
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
        of = f" of {human_size(self.total)}" if self.total is not None else ""
        return f"{human_size(self.size)} ({self.size} bytes){of} received"

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
                    human_size(self.size),
                    human_size(total),
                    human_size(rate),
                    100 * self.size // total,
                )
            else:
                logger.info(
                    "%s: %s so far, %s/s", self.source, human_size(self.size), human_size(rate)
                )
            self.last_log = now

    def finished(self):
        elapsed = max(time.monotonic() - self.started, 1e-9)
        logger.info(
            "%s: %s in %.1f s (%s/s)",
            self.source,
            human_size(self.size),
            elapsed,
            human_size(self.size / elapsed),
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
        while chunk := read(sizes.CHUNK_BYTES):
            out.write(chunk)
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            attempt.update(len(chunk))
    if attempt.expired:  # the end of the stream was the deadline timer's doing
        raise attempt.deadline_error()
    attempt.finished()
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}, size


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
