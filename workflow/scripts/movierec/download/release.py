"""A release into its output directory: the file list, the mirror, and the atomic build.

`download_release` checks the whole release list before fetching anything,
fetches each file (`movierec.download.fetch`), unpacks archives
(`movierec.download.archive`) and builds everything in a sibling directory that
is renamed into place at the end, so a failure at any step leaves nothing where
the workflow looks. This module owns only that sequence and the directories.
"""

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import urllib.parse
from pathlib import Path, PurePosixPath

from movierec.download.archive import Extraction, extract_zip, is_zip
from movierec.download.errors import DownloadError
from movierec.download.fetch import URL_SCHEMES, fetch_verified

logger = logging.getLogger(__name__)

HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}


def download_release(
    files,
    dest_dir,
    mirror=None,
    *,
    retries,
    timeout_s,
    deadline_s,
    min_bytes_per_s,
    rate_window_s,
    max_extracted_bytes,
    warn_extracted_bytes,
    max_compression_ratio,
    backoff_s=1.0,
):
    """Fetch `files` into `dest_dir`, verify their checksums, and unpack zips.

    The settings from `retries` on are the config's ``download:`` block, which
    the schema has checked and filled in; they have no defaults here, so the
    schema stays their one source (`backoff_s` is not a config setting).

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
        and from the bytes written. Entries under `archive.RATIO_EXEMPT_BYTES`
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
        limits = Extraction(max_extracted_bytes, max_compression_ratio, warn_extracted_bytes)
        names = []
        for spec in files:
            name = spec["name"]
            source = _source(spec["url"], name, mirror)
            target = build / name
            fetch_verified(
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
            if is_zip(target):
                extract_zip(target, build, limits, reserved=set(names))
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
