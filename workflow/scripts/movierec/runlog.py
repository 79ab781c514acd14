"""Send a rule's logging and stderr to its Snakemake log file; clean up on SIGTERM."""

import logging
import sys

from movierec import atomic


def setup(log_path, level=logging.INFO):
    """Route `logging` and stderr of this process to `log_path`.

    Rules run one script per process, so replacing the root handlers is safe.
    Tracebacks land in the log, which is where Snakemake tells users to look.
    SIGTERM (what Snakemake and SLURM send to cancel a job) is turned into an
    exception, so every rule's temporary files are removed as on Ctrl-C.
    """
    atomic.raise_on_sigterm()
    stream = open(log_path, "w", buffering=1)
    sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger("movierec")
