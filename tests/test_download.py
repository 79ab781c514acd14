"""movierec.download: sources, mirrors, retries, checksums, atomicity and safe unzipping.

A tiny threaded HTTP server on 127.0.0.1 serves a mirror directory; per-path
knobs make it fail with 503, stall, drop the connection, or trickle its answer a
byte at a time, so the retry, timeout, deadline and rate paths run for real in a
few seconds.
"""

import hashlib
import http.server
import io
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from conftest import MIRROR, copy_workflow, snakemake
from movierec.download import ArchiveError, ChecksumError, DownloadError, archive, fetch, sizes
from movierec.download import download_release as library_download_release
from schema_defaults import download_settings

FAST = {"backoff_s": 0.001, "timeout_s": 5}


def download_release(files, dest_dir, **keys):
    """The library's download_release, with the schema's `download:` defaults for what
    a test does not set (the rule passes the whole validated block)."""
    return library_download_release(files, dest_dir, **{**download_settings(), **keys})


# --------------------------------------------------------------------------- server


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of `server.root`; `server.knobs[path]` makes a path misbehave."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits[self.path] = server.hits.get(self.path, 0) + 1
            knob = server.knobs.get(self.path, {})
            fail = knob.get("fail", 0)
            if fail:
                knob["fail"] = fail - 1
        if fail:
            self.send_error(knob.get("status", 503))
            return
        if knob.get("delay"):
            time.sleep(knob["delay"])
        path = server.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if knob.get("trickle_headers"):  # the whole answer, status line first, byte by byte
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            self.trickle(head + data, knob["trickle_headers"])
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if knob.get("truncate"):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if knob.get("stall"):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(knob["stall"])
        if knob.get("trickle"):
            self.trickle(data, knob["trickle"])
            return
        self.wfile.write(data)

    def trickle(self, data, seconds_per_byte):
        """Send `data` one byte every `seconds_per_byte`, until the client hangs up."""
        for i in range(len(data)):
            if self.server.stopping.wait(seconds_per_byte):
                return
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up: what the tests want
                return


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def http_mirror(tmp_path):
    """(base_url, server) for a server whose root is tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    server = Server(("127.0.0.1", 0), MirrorHandler)
    server.root, server.knobs, server.hits, server.lock = root, {}, {}, threading.Lock()
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.stopping.set()
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- helpers


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def md5(data):
    return hashlib.md5(data).hexdigest()


def make_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    """Write a zip of {name: bytes}; returns its bytes."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path).read_bytes()


GOOD_MEMBERS = {
    "ml-tiny/ratings.csv": b"userId,movieId,rating,timestamp\n1,10,4.0,100\n2,10,3.5,200\n" * 50,
    "ml-tiny/movies.csv": b"movieId,title,genres\n10,Heat (1995),Action\n",
}


def assert_nothing_left(parent, dest, allowed=()):
    """No dest_dir and no temporary files or folders beside it."""
    assert not dest.exists(), f"{dest} was left behind"
    leftovers = sorted(p.name for p in parent.iterdir() if p.name not in allowed)
    assert leftovers == [], f"left behind: {leftovers}"


def official(name):
    """A registry URL that must never be contacted when a mirror is set."""
    return f"https://files.example.invalid/datasets/movielens/{name}"


# --------------------------------------------------------------------------- sources


def test_http_download_extracts_zip_keeps_archive(tmp_path, http_mirror, caplog):
    base, server = http_mirror
    data = make_zip(server.root / "ml-tiny.zip", GOOD_MEMBERS)
    dest = tmp_path / "out" / "raw"
    caplog.set_level(logging.INFO, logger="movierec.download")
    paths = download_release(
        [{"url": f"{base}/ml-tiny.zip", "sha256": sha256(data), "md5": md5(data)}],
        dest,
        **FAST,
    )
    assert paths == [dest / "ml-tiny.zip"]
    assert (dest / "ml-tiny.zip").read_bytes() == data
    for name, content in GOOD_MEMBERS.items():
        assert (dest / name).read_bytes() == content
    assert sorted(p.name for p in dest.iterdir()) == ["ml-tiny", "ml-tiny.zip"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["raw"]  # no temp dirs
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert "100%" in caplog.text and "sha256 and md5 verified" in caplog.text


def test_progress_is_logged_about_every_ten_percent(tmp_path, http_mirror, caplog, monkeypatch):
    base, server = http_mirror
    (server.root / "big.csv").write_bytes(b"x" * 100_000)
    monkeypatch.setattr(sizes, "CHUNK_BYTES", 1000)
    caplog.set_level(logging.INFO, logger="movierec.download")
    download_release([{"url": f"{base}/big.csv"}], tmp_path / "raw", **FAST)
    percents = [r.getMessage() for r in caplog.records if r.getMessage().endswith("%)")]
    assert [p.rsplit("(", 1)[1] for p in percents] == [f"{10 * i}%)" for i in range(1, 11)]


def test_file_url_source_and_non_zip_kept(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    payload = b"userId,movieId,rating\n1,1,5.0\n"
    (src / "ml-ratings-100k-sample.csv").write_bytes(payload)
    dest = tmp_path / "raw"
    download_release(
        [{"url": (src / "ml-ratings-100k-sample.csv").as_uri(), "sha256": sha256(payload)}],
        dest,
        **FAST,
    )
    assert [p.name for p in dest.iterdir()] == ["ml-ratings-100k-sample.csv"]
    assert (dest / "ml-ratings-100k-sample.csv").read_bytes() == payload


def test_mirror_local_directory_uses_official_basename(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = make_zip(mirror / "ml-tiny.zip", GOOD_MEMBERS)
    dest = tmp_path / "raw"
    download_release(
        [{"url": official("ml-tiny.zip"), "sha256": sha256(data)}],
        dest,
        mirror=str(mirror),
        retries=0,
        **FAST,
    )
    assert (dest / "ml-tiny" / "movies.csv").read_bytes() == GOOD_MEMBERS["ml-tiny/movies.csv"]


def test_mirror_as_http_base_url(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "sub").mkdir()
    payload = b"movieId,title,genres\n1,Toy Story (1995),Animation\n"
    (server.root / "sub" / "ml-movies.csv").write_bytes(payload)
    dest = tmp_path / "raw"
    download_release(
        [
            {"url": "https://raw.example.invalid/x/data/ml-movies.csv", "md5": md5(payload)},
        ],
        dest,
        mirror=f"{base}/sub/",
        retries=0,
        **FAST,
    )
    assert (dest / "ml-movies.csv").read_bytes() == payload
    assert server.hits == {"/sub/ml-movies.csv": 1}


def test_mirror_as_file_base_url(tmp_path):
    mirror = tmp_path / "mirror dir"  # a space: the URL must be quoted and unquoted
    mirror.mkdir()
    (mirror / "ml-movies.csv").write_bytes(b"a,b\n")
    dest = tmp_path / "raw"
    download_release(
        [{"url": official("ml-movies.csv")}], dest, mirror=mirror.as_uri(), retries=0, **FAST
    )
    assert (dest / "ml-movies.csv").read_bytes() == b"a,b\n"


def test_missing_mirror_directory_is_named(tmp_path):
    with pytest.raises(DownloadError, match="`mirror`.*neither"):
        download_release(
            [{"url": official("ml-tiny.zip")}], tmp_path / "raw", mirror=str(tmp_path / "nope")
        )
    assert_nothing_left(tmp_path, tmp_path / "raw")


def test_file_missing_from_mirror(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DownloadError, match=r"ml-tiny\.zip does not exist.*`mirror`"):
        download_release(
            [{"url": official("ml-tiny.zip")}],
            tmp_path / "raw",
            mirror=str(tmp_path / "mirror"),
        )
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"mirror"})


def test_several_files_in_one_release(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "a.csv").write_bytes(b"a\n")
    (server.root / "b.csv").write_bytes(b"b\n")
    dest = tmp_path / "raw"
    download_release([{"url": f"{base}/a.csv"}, {"url": f"{base}/b.csv"}], dest, **FAST)
    assert sorted(p.name for p in dest.iterdir()) == ["a.csv", "b.csv"]


# --------------------------------------------------------------------------- retries


def test_503_then_success_is_retried(tmp_path, http_mirror, caplog):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"ok\n")
    server.knobs["/f.csv"] = {"fail": 3, "status": 503}
    download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=3, **FAST)
    assert server.hits["/f.csv"] == 4
    assert (tmp_path / "raw" / "f.csv").read_bytes() == b"ok\n"
    assert caplog.text.count("retrying in") == 3


def test_503_gives_up_after_retries(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"ok\n")
    server.knobs["/f.csv"] = {"fail": 10, "status": 503}
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\).*HTTP 503.*`mirror`"):
        download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=2, **FAST)
    assert server.hits["/f.csv"] == 3
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_backoff_doubles(tmp_path, http_mirror, monkeypatch):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"ok\n")
    server.knobs["/f.csv"] = {"fail": 3}
    waits = []
    monkeypatch.setattr(fetch.time, "sleep", waits.append)
    download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=3, backoff_s=0.5)
    assert waits == [0.5, 1.0, 2.0]


def test_404_is_not_retried(tmp_path, http_mirror):
    base, server = http_mirror
    with pytest.raises(DownloadError, match="HTTP 404.*not retried"):
        download_release([{"url": f"{base}/missing.zip"}], tmp_path / "raw", retries=3, **FAST)
    assert server.hits["/missing.zip"] == 1
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_timeout_is_retried_then_fails(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "slow.csv").write_bytes(b"x\n")
    server.knobs["/slow.csv"] = {"delay": 1.5}
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out.*`mirror`"):
        download_release(
            [{"url": f"{base}/slow.csv"}],
            tmp_path / "raw",
            retries=1,
            timeout_s=0.2,
            backoff_s=0.001,
        )
    assert server.hits["/slow.csv"] == 2
    assert time.monotonic() - started < 1.5  # gave up on the timeout, not the server
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_stall_mid_body_times_out_and_retry_succeeds(tmp_path, http_mirror):
    base, server = http_mirror
    payload = b"0123456789" * 1000
    (server.root / "f.csv").write_bytes(payload)
    server.knobs["/f.csv"] = {"stall": 1.5}
    with pytest.raises(DownloadError, match="timed out"):
        download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=0, timeout_s=0.2)
    server.knobs["/f.csv"] = {}
    download_release(
        [{"url": f"{base}/f.csv", "sha256": sha256(payload)}], tmp_path / "raw", **FAST
    )
    assert (tmp_path / "raw" / "f.csv").read_bytes() == payload


def test_short_body_is_retried(tmp_path, http_mirror):
    base, server = http_mirror
    payload = b"0123456789" * 1000
    (server.root / "f.csv").write_bytes(payload)
    server.knobs["/f.csv"] = {"truncate": True}
    with pytest.raises(DownloadError, match=r"after 2 attempt\(s\)"):
        download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=1, **FAST)
    assert server.hits["/f.csv"] == 2
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_unreachable_host_names_mirror_option(tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download_release(
            [{"url": f"http://127.0.0.1:{port}/ml-latest-small.zip"}],
            tmp_path / "raw",
            retries=2,
            **FAST,
        )
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert "`mirror`" in message and "--config mirror=" in message
    assert_nothing_left(tmp_path, tmp_path / "raw")


# --------------------------------------------------------------------------- checksums


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_checksum_mismatch_shows_expected_and_actual(tmp_path, http_mirror, algo):
    base, server = http_mirror
    data = make_zip(server.root / "ml-tiny.zip", GOOD_MEMBERS)
    wrong = {"sha256": "ab" * 32, "md5": "cd" * 16}[algo]
    actual = {"sha256": sha256, "md5": md5}[algo](data)
    with pytest.raises(ChecksumError) as info:
        download_release(
            [{"url": f"{base}/ml-tiny.zip", algo: wrong}], tmp_path / "raw", retries=3, **FAST
        )
    message = str(info.value)
    assert "ml-tiny.zip" in message and wrong in message and actual in message
    assert server.hits["/ml-tiny.zip"] == 1  # a mismatch is not retried
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_one_good_one_bad_checksum_still_fails(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.csv").write_bytes(b"x")
    with pytest.raises(ChecksumError, match="expected md5"):
        download_release(
            [{"url": official("f.csv"), "sha256": sha256(b"x"), "md5": md5(b"y")}],
            tmp_path / "raw",
            mirror=str(tmp_path / "m"),
        )
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"m"})


def test_checksums_are_case_insensitive(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.csv").write_bytes(b"x")
    download_release(
        [{"url": official("f.csv"), "sha256": sha256(b"x").upper()}],
        tmp_path / "raw",
        mirror=str(tmp_path / "m"),
    )
    assert (tmp_path / "raw" / "f.csv").exists()


def test_missing_checksum_warns_with_sha256(tmp_path, caplog):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.csv").write_bytes(b"x")
    download_release([{"url": official("f.csv")}], tmp_path / "raw", mirror=str(tmp_path / "m"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and sha256(b"x") in warnings[0] and "pin" in warnings[0]


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"url": official("f.csv"), "sha256": "xyz"}, "not a hex digest of 64"),
        ({"url": official("f.csv"), "md5": "ab" * 32}, "not a hex digest of 32"),
        ({"sha256": None}, "no `url`"),
        ({"url": "ftp://example.invalid/f.csv"}, "scheme 'ftp'"),
        ({"url": "https://example.invalid/"}, "file name"),
    ],
)
def test_malformed_entries_fail_before_any_download(tmp_path, entry, match):
    with pytest.raises(ValueError, match=match):
        download_release([entry], tmp_path / "raw")
    assert_nothing_left(tmp_path, tmp_path / "raw")


def test_duplicate_basenames_are_refused(tmp_path):
    with pytest.raises(ValueError, match="share the name 'f.csv'"):
        download_release(
            [{"url": "https://a.invalid/f.csv"}, {"url": "https://b.invalid/f.csv"}],
            tmp_path / "raw",
        )


# --------------------------------------------------------------------------- archives


def _zip_with_raw_names(path, members):
    """A zip whose member names are written as given (ZipFile.writestr keeps them)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            zf.writestr(info, data)


def _symlink_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-tiny/ratings.csv", b"a\n")
        info = zipfile.ZipInfo("ml-tiny/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")


def _truncated_zip(path):
    data = make_zip(path, GOOD_MEMBERS)
    path.write_bytes(data[: len(data) // 2])


def _corrupt_stored_zip(path):
    """Flip bytes inside a stored member's data: the CRC check must catch it."""
    data = bytearray(make_zip(path, GOOD_MEMBERS, zipfile.ZIP_STORED))
    offset = data.index(b"1,10,4.0")
    data[offset : offset + 3] = b"9,9"
    path.write_bytes(bytes(data))


def _corrupt_deflated_zip(path):
    """Overwrite the middle of a deflated member's compressed stream."""
    text = " ".join(str(i * i % 9973) for i in range(700)).encode()  # ~3.3 kB, under the cap
    big = {"ml-tiny/ratings.csv": text}
    data = bytearray(make_zip(path, big))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


BAD_ZIPS = {
    "traversal": (lambda p: _zip_with_raw_names(p, {"../x": b"evil"}), "'..' component"),
    "nested-traversal": (
        lambda p: _zip_with_raw_names(p, {"ml-tiny/../../x": b"evil"}),
        "'..' component",
    ),
    "backslash-traversal": (
        lambda p: _zip_with_raw_names(p, {"..\\x": b"evil"}),
        "'..' component",
    ),
    "absolute": (lambda p: _zip_with_raw_names(p, {"/etc/x": b"evil"}), "absolute path"),
    "drive-letter": (lambda p: _zip_with_raw_names(p, {"C:/x": b"evil"}), "drive letter"),
    "symlink": (_symlink_zip, "symbolic link"),
    "overwrites-archive": (
        lambda p: _zip_with_raw_names(p, {"bad.zip": b"evil"}),
        "overwrite a downloaded file",
    ),
    "size-cap": (
        lambda p: make_zip(p, {"ml-tiny/big.csv": b"0" * 5000}),
        "declares 5000 bytes",
    ),
    "truncated": (_truncated_zip, "truncated or corrupt"),
    "corrupt-stored": (_corrupt_stored_zip, "truncated or corrupt.*CRC"),
    "corrupt-deflated": (_corrupt_deflated_zip, "truncated or corrupt"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ZIPS))
@pytest.mark.parametrize("precreated", [False, True], ids=["no-dest", "empty-dest"])
def test_bad_zip_raises_and_leaves_nothing(tmp_path, kind, precreated):
    make, match = BAD_ZIPS[kind]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make(mirror / "bad.zip")
    parent = tmp_path / "results" / "ml-bad"
    dest = parent / "raw"
    if precreated:  # Snakemake may have made an empty output directory
        dest.mkdir(parents=True)
    with pytest.raises(ArchiveError, match=match) as info:
        download_release(
            [{"url": official("bad.zip")}],
            dest,
            mirror=str(mirror),
            max_extracted_bytes=4000,
            **FAST,
        )
    assert "bad.zip" in str(info.value)
    assert_nothing_left(parent, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "results"]


def test_written_bytes_are_capped_even_if_sizes_lie():
    budget = [10]
    with pytest.raises(ArchiveError, match="bytes written exceed"):
        archive._copy_capped(io.BytesIO(b"x" * 11), io.BytesIO(), budget, "a.zip: m")


def test_size_cap_is_shared_by_the_archives_of_a_release(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_zip(mirror / "a.zip", {"a/x": b"0" * 3000})
    make_zip(mirror / "b.zip", {"b/x": b"0" * 3000})
    files = [{"url": official("a.zip")}, {"url": official("b.zip")}]
    with pytest.raises(ArchiveError, match="b.zip.*3000 bytes.*1000 left"):
        download_release(files, tmp_path / "raw", mirror=str(mirror), max_extracted_bytes=4000)
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"mirror"})
    download_release(files, tmp_path / "raw", mirror=str(mirror), max_extracted_bytes=6000)
    assert (tmp_path / "raw" / "b" / "x").stat().st_size == 3000


def test_existing_nonempty_dest_is_replaced_only_on_success(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.csv").write_bytes(b"new\n")
    dest = tmp_path / "raw"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    with pytest.raises(ChecksumError):
        download_release(
            [{"url": official("f.csv"), "md5": md5(b"other")}], dest, mirror=str(mirror)
        )
    assert (dest / "stale.txt").read_text() == "old"  # a failure does not touch it
    download_release([{"url": official("f.csv")}], dest, mirror=str(mirror))
    assert sorted(p.name for p in dest.iterdir()) == ["f.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "raw"]


# --------------------------------------------------------------------------- slow servers


def test_trickling_server_fails_at_the_deadline(tmp_path, http_mirror, caplog, monkeypatch):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"x" * 1000)
    server.knobs["/f.csv"] = {"trickle": 0.2}  # 200 s for the file: never finishes
    monkeypatch.setattr(fetch, "PROGRESS_EVERY_S", 0.3)
    caplog.set_level(logging.INFO, logger="movierec.download")
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_release(
            [{"url": f"{base}/f.csv"}],
            tmp_path / "raw",
            retries=1,
            deadline_s=1.0,
            min_bytes_per_s=0,
            **FAST,
        )
    assert time.monotonic() - started < 4
    message = str(info.value)
    assert f"from {base}/f.csv after 2 attempt(s)" in message
    assert "download.deadline_s = 1 s" in message and "raise download.deadline_s" in message
    assert re.search(r"\((\d) bytes\) of 1000 B received", message), message
    assert server.hits["/f.csv"] == 2
    # Progress by time, with what arrived, of how much, and the rate.
    progress = [r.getMessage() for r in caplog.records if "B/s (0%)" in r.getMessage()]
    assert progress and re.search(r"f\.csv: \d B of 1000 B, [\d.]+ B/s \(0%\)$", progress[0])
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_trickling_server_fails_on_min_rate(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"x" * 1000)
    server.knobs["/f.csv"] = {"trickle": 0.2}
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_release(
            [{"url": f"{base}/f.csv"}],
            tmp_path / "raw",
            retries=0,
            min_bytes_per_s=100,
            rate_window_s=0.6,
            **FAST,
        )
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "too slow" in message and "under download.min_bytes_per_s = 100" in message
    assert "of 1000 B received" in message and "0 turns the check off" in message
    assert f"{base}/f.csv" in message
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_trickled_headers_are_cut_at_the_deadline(tmp_path, http_mirror):
    """No body byte ever reaches the read loop: the deadline timer cuts the connection."""
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"ok\n")
    server.knobs["/f.csv"] = {"trickle_headers": 0.2}
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"download\.deadline_s = 0\.8 s, 0 B \(0 bytes\)"):
        download_release([{"url": f"{base}/f.csv"}], tmp_path / "raw", retries=0, deadline_s=0.8)
    assert time.monotonic() - started < 2.5
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"served"})


def test_slow_but_steady_download_is_not_cut(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"y" * 40)
    server.knobs["/f.csv"] = {"trickle": 0.01}  # about 60 bytes/s, above the minimum
    download_release(
        [{"url": f"{base}/f.csv"}],
        tmp_path / "raw",
        retries=0,
        deadline_s=5,
        min_bytes_per_s=5,
        rate_window_s=0.3,
    )
    assert (tmp_path / "raw" / "f.csv").read_bytes() == b"y" * 40


# --------------------------------------------------------------------------- SIGTERM

RULE_SCRIPT = Path(__file__).parents[1] / "workflow" / "scripts" / "download_release.py"
LIBRARY = RULE_SCRIPT.parent

# The rule script as Snakemake runs it: its own process, a `snakemake` object in globals.
RUN_RULE_SCRIPT = """
import runpy, sys, types
script, url, raw, log = sys.argv[1:]
settings = dict(retries=0, timeout_s=60, deadline_s=600, min_bytes_per_s=0, rate_window_s=60,
                max_extracted_bytes=10**9, warn_extracted_bytes=10**9, max_compression_ratio=100)
snakemake = types.SimpleNamespace(
    log=[log],
    params=types.SimpleNamespace(files=[{"url": url}]),
    output=types.SimpleNamespace(raw=raw),
    config={"download": settings, "mirror": None},
)
runpy.run_path(script, init_globals={"snakemake": snakemake})
"""


def wait_for(predicate, proc, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the child exited ({proc.returncode}) before it could be signalled")
        time.sleep(0.02)
    pytest.fail("the child did not get there in time")


def test_sigterm_during_download_leaves_no_temporary_dir(tmp_path, http_mirror):
    base, server = http_mirror
    (server.root / "f.csv").write_bytes(b"x" * 1000)
    server.knobs["/f.csv"] = {"trickle": 0.05}  # 50 s: still running when signalled
    parent = tmp_path / "results" / "ds"
    parent.mkdir(parents=True)
    raw, log = parent / "raw", tmp_path / "download_release.log"
    env = {**os.environ, "PYTHONPATH": str(LIBRARY)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_RULE_SCRIPT, RULE_SCRIPT, f"{base}/f.csv", raw, log],
        env=env,
    )
    try:
        # Signal it mid-body: the build directory and the partial file exist (the file is
        # opened once the headers are in).
        wait_for(lambda: list(parent.glob(".raw.*.tmp/.f.csv.part")), proc)
        time.sleep(0.3)  # a few bytes into the body
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert_nothing_left(parent, raw)
    assert "SIGTERM received: removing temporary files" in log.read_text()


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(
    "umask, file_mode, dir_mode",
    [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)],
    ids=["022", "077"],
)
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_zip(mirror / "ml-tiny.zip", GOOD_MEMBERS)
    (mirror / "extra.csv").write_bytes(b"a\n")
    dest = tmp_path / "raw"
    old = os.umask(umask)
    try:
        download_release(
            [{"url": official("ml-tiny.zip")}, {"url": official("extra.csv")}],
            dest,
            mirror=str(mirror),
        )
    finally:
        os.umask(old)
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
        for p in [dest, *dest.rglob("*")]
    }
    assert modes == {
        "raw": dir_mode,
        "raw/ml-tiny": dir_mode,
        "raw/ml-tiny.zip": file_mode,
        "raw/extra.csv": file_mode,
        "raw/ml-tiny/ratings.csv": file_mode,
        "raw/ml-tiny/movies.csv": file_mode,
    }


# --------------------------------------------------------------------------- compression ratio

ZEROS = 4 << 20  # 4 MiB of zeros deflate to about 4 kB: a ratio near 1000


def test_highly_compressed_member_is_refused_by_default(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_zip(mirror / "bomb.zip", {"ml-tiny/zeros.csv": bytes(ZEROS), **GOOD_MEMBERS})
    with pytest.raises(ArchiveError) as info:
        download_release([{"url": official("bomb.zip")}], tmp_path / "raw", mirror=str(mirror))
    message = str(info.value)
    assert "Refusing to extract bomb.zip: member 'ml-tiny/zeros.csv'" in message
    assert re.search(r"expands \d{3,4} times \(4194304 bytes from \d+ compressed", message)
    assert "download.max_compression_ratio = 100" in message
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"mirror"})
    # Trusted, with the limit raised: it extracts.
    download_release(
        [{"url": official("bomb.zip")}],
        tmp_path / "raw",
        mirror=str(mirror),
        max_compression_ratio=5000,
    )
    assert (tmp_path / "raw" / "ml-tiny" / "zeros.csv").stat().st_size == ZEROS


def test_many_small_compressible_members_are_judged_together(tmp_path):
    """Each member is under the exemption; the archive as a whole is not."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    members = {f"ml-tiny/part{i}.csv": bytes(archive.RATIO_EXEMPT_BYTES // 2) for i in range(4)}
    make_zip(mirror / "bomb.zip", members)
    with pytest.raises(ArchiveError, match=r"bomb\.zip \(all members together\): it expands"):
        download_release([{"url": official("bomb.zip")}], tmp_path / "raw", mirror=str(mirror))
    assert_nothing_left(tmp_path, tmp_path / "raw", allowed={"mirror"})


def test_written_bytes_are_held_to_the_ratio_even_if_sizes_lie():
    with pytest.raises(ArchiveError, match="2097152 bytes written from 1000 compressed"):
        archive._copy_capped(
            io.BytesIO(bytes(2 << 20)),
            io.BytesIO(),
            [10**9],
            "a.zip: member 'm'",
            compressed=1000,
            max_ratio=100,
        )


def test_large_extraction_is_logged_as_a_warning(tmp_path, caplog):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_zip(mirror / "ml-tiny.zip", GOOD_MEMBERS)
    size = sum(len(v) for v in GOOD_MEMBERS.values())
    download_release(
        [{"url": official("ml-tiny.zip")}],
        tmp_path / "raw",
        mirror=str(mirror),
        warn_extracted_bytes=1000,
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warnings = [w for w in warnings if "warn_extracted_bytes" in w]
    assert len(warnings) == 1
    assert f"ml-tiny.zip: the release will have 2.9 KiB ({size} bytes) extracted" in warnings[0]
    assert "download.warn_extracted_bytes = 1000" in warnings[0]


# --------------------------------------------------------------------------- real mirror


def test_shared_mirror_release_matches_registry(tmp_path, mirror):
    """The default dataset's pinned checksums (config.yaml) accept the shared mirror's zip."""
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    entry = config["datasets"]["ml-latest-small"]
    dest = tmp_path / "raw"
    download_release(
        [{key: entry[key] for key in ("url", "sha256", "md5")}],
        dest,
        mirror=str(mirror),
        **FAST,
    )
    assert (dest / "ml-latest-small" / "ratings.csv").stat().st_size == 2483723
    assert (dest / "ml-latest-small.zip").stat().st_size == 978202


@pytest.mark.slow
def test_rule_downloads_from_mirror_and_mirror_change_reruns_nothing(tmp_path):
    project = copy_workflow(tmp_path / "project")
    snakemake(project, "results/seed-sample/raw", "results/ml-latest-small/raw")
    raw = project / "results" / "ml-latest-small" / "raw"
    assert (raw / "ml-latest-small" / "movies.csv").is_file()
    assert (raw / "ml-latest-small.zip").is_file()
    seed_raw = project / "results" / "seed-sample" / "raw"
    # Snakemake adds .snakemake_timestamp to directory outputs.
    seed = sorted(p.name for p in seed_raw.iterdir() if not p.name.startswith(".snakemake"))
    assert seed == ["ml-movies.csv", "ml-ratings-100k-sample.csv"]
    assert not [p for p in seed_raw.parent.iterdir() if p.name.startswith(".raw")]  # no temps
    log = (project / "results" / "ml-latest-small" / "logs" / "download_release.log").read_text()
    assert "sha256 and md5 verified" in log
    # Same files, another location (a file:// URL): the checksums pin the content,
    # so nothing is out of date.
    proc = snakemake(
        project,
        "-n",
        "results/seed-sample/raw",
        "results/ml-latest-small/raw",
        "--config",
        f"mirror={MIRROR.as_uri()}",
        mirror=False,
    )
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_rule_failure_leaves_no_raw_dir(tmp_path):
    project = copy_workflow(tmp_path / "project")
    override = tmp_path / "bad-checksum.yaml"
    override.write_text(
        json.dumps(
            {
                "datasets": {
                    "seed-sample": {"files": [{"url": official("ml-movies.csv"), "md5": "0" * 32}]}
                }
            }
        )
    )
    proc = snakemake(project, "results/seed-sample/raw", "--configfile", str(override), check=False)
    assert proc.returncode != 0
    raw_parent = project / "results" / "seed-sample"
    assert not (raw_parent / "raw").exists()
    assert [p.name for p in raw_parent.iterdir()] == ["logs"]
    log = (raw_parent / "logs" / "download_release.log").read_text()
    assert "Checksum mismatch for ml-movies.csv" in log and "0" * 32 in log
