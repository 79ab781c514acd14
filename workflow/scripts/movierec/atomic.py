"""Write outputs under a temporary name and rename, so no half-written file stays.

Cleanup runs in ``except``/``finally`` blocks, which an exception reaches but a
signal's default action does not: call `raise_on_sigterm` once at the start of a
rule script so that SIGTERM (what Snakemake sends its jobs when it is interrupted
or a cluster job is cancelled) unwinds the stack like Ctrl-C does.
"""

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


class Terminated(SystemExit):
    """Raised by the SIGTERM handler of `raise_on_sigterm`; exits with status 143.

    A `SystemExit` (so a `BaseException`, like `KeyboardInterrupt`): ``except
    Exception`` does not swallow it, cleanup blocks run, and the process exits
    quietly with the shell's code for "killed by SIGTERM".
    """


def raise_on_sigterm():
    """Make SIGTERM raise `Terminated` in the main thread, so temporary files are removed.

    The first SIGTERM raises; the default action is restored at the same time, so a
    second one stops the process at once, even in the middle of its cleanup. Call it
    from the main thread (Python runs signal handlers there only).
    """

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        logger.warning("SIGTERM received: removing temporary files and stopping")
        raise Terminated(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("raise_on_sigterm() must be called from the main thread")
    signal.signal(signal.SIGTERM, handler)


def umask():
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    # Elsewhere the only way is to set it and put it back (briefly visible to threads).
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def default_mode(directory=False):
    """The mode `open()` or `mkdir()` would give a new file or directory: 0666/0777 & ~umask.

    `tempfile.mkstemp` and `mkdtemp` make private (0600/0700) entries; apply this to
    them before renaming them into place so results stay readable to whoever the
    umask allows.
    """
    return (0o777 if directory else 0o666) & ~umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` on success.

    On any exception (with `raise_on_sigterm`, SIGTERM included) the temporary
    file is removed and `path` is untouched. The temporary name keeps the suffix
    so writers that dispatch on it work. The result gets the permissions of a
    plainly created file (0666 & ~umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    try:
        os.close(fd)
        yield Path(tmp)
        # Writers may have replaced the file; set the mode on whatever is there now.
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path, obj):
    """Atomically write `obj` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def write_text(path, text):
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
