"""movierec.atomic: rename into place, permissions of the result, cleanup on SIGTERM."""

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from movierec import atomic
from movierec.atomic import atomic_path, write_json

LIBRARY = Path(__file__).parents[1] / "workflow" / "scripts"

# A rule-script-like child: handler installed, then it writes via atomic_path and blocks.
WRITE_AND_BLOCK = """
import sys, time
from movierec import atomic
{install}
with atomic.atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a parquet file")
    print("writing", flush=True)
    {block}
"""


def temporaries(directory):
    return sorted(p.name for p in Path(directory).iterdir() if ".tmp" in p.name)


def start_child(out, install="atomic.raise_on_sigterm()", block="time.sleep(60)"):
    """Start the child and wait until it is inside atomic_path with its temporary written."""
    code = WRITE_AND_BLOCK.format(install=install, block=block)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)],
        env={**os.environ, "PYTHONPATH": str(LIBRARY)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # blocks until the child got there (or died)
    assert line == "writing\n", proc.communicate(timeout=10)
    assert len(temporaries(out.parent)) == 1
    return proc


def stop(proc, timeout_s=10):
    try:
        proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.mark.parametrize(
    "umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"]
)
def test_result_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "x.parquet") as tmp:
            tmp.write_bytes(b"data")
        write_json(tmp_path / "m.json", {"a": 1})
        assert atomic.umask() == umask
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.parquet").stat().st_mode) == mode  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == mode
    assert atomic.default_mode(directory=True) == 0o777 & ~old


def test_mode_is_set_even_if_the_writer_replaced_the_file(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.csv") as tmp:
            tmp.unlink()
            tmp.write_text("a\n")
            tmp.chmod(0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.csv").stat().st_mode) == 0o644


def test_exception_removes_temporary_and_keeps_old_file(tmp_path):
    out = tmp_path / "x.parquet"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"new, half")
        raise RuntimeError("writer failed")
    assert out.read_bytes() == b"old"
    assert temporaries(tmp_path) == []


def test_sigterm_while_writing_removes_temporary(tmp_path):
    out = tmp_path / "x.parquet"
    proc = start_child(out)
    os.kill(proc.pid, signal.SIGTERM)
    assert stop(proc) == 128 + signal.SIGTERM
    assert temporaries(tmp_path) == [] and not out.exists()
    assert "SIGTERM received: removing temporary files" in proc.stderr.read()


def test_without_the_handler_sigterm_leaves_the_temporary(tmp_path):
    """Why rule scripts call raise_on_sigterm: the default action skips all cleanup."""
    out = tmp_path / "x.parquet"
    proc = start_child(out, install="")
    os.kill(proc.pid, signal.SIGTERM)
    assert stop(proc) == -signal.SIGTERM
    assert len(temporaries(tmp_path)) == 1


def test_second_sigterm_stops_a_stuck_cleanup(tmp_path):
    """The first SIGTERM restores the default action, so a second one always ends it."""
    out = tmp_path / "x.parquet"
    block = (
        "try:\n"
        "        print('in try', flush=True)\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        "        print('in finally', flush=True)\n"
        "        time.sleep(60)"
    )
    proc = start_child(out, block=block)
    assert proc.stdout.readline() == "in try\n"
    os.kill(proc.pid, signal.SIGTERM)
    # Wait for the handler to have run: two signals sent before it runs arrive as one.
    assert proc.stdout.readline() == "in finally\n"
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGTERM)
    assert stop(proc) == -signal.SIGTERM


def test_raise_on_sigterm_needs_the_main_thread():
    errors = []

    def install():
        try:
            atomic.raise_on_sigterm()
        except RuntimeError as err:
            errors.append(str(err))

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert errors == ["raise_on_sigterm() must be called from the main thread"]
