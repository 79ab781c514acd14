"""Worker threads over parts of a batch, with one intra-op thread each while they run.

On CPU the fast engine runs parts of each batch in Python threads (PyTorch
releases the GIL inside each operation) instead of OpenMP inside every small
operation: that scales better, and much better on a busy machine, where an
OpenMP barrier waits for a descheduled thread at every operation. Intra-op
threads are set to 1 while a pool is open and restored when it closes (torch's
thread count is process-wide, so `fit` closes the pool in a ``finally``).
"""

from concurrent.futures import ThreadPoolExecutor

import torch


class Workers:
    """`n` workers: the calling thread plus ``n - 1`` pool threads."""

    def __init__(self, n, name):
        self.n = max(1, int(n))
        self._pool = None
        self._threads = None
        if self.n > 1:
            self._pool = ThreadPoolExecutor(self.n - 1, thread_name_prefix=name)
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def run(self, fn, jobs):
        """``[fn(worker, job) for each worker's job]``, in worker order (job 0 runs here)."""
        if self._pool is None:
            return [fn(0, jobs[0])]
        futures = [self._pool.submit(fn, w, job) for w, job in enumerate(jobs) if w > 0]
        first = fn(0, jobs[0])
        return [first] + [f.result() for f in futures]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)
