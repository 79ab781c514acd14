"""The errors a download ends in, one class per cause, so callers can tell them apart.

Separate from the code that raises them because all three stages do: the
release (a missing mirror), the fetch (network, checksums) and the archive.
"""


class DownloadError(RuntimeError):
    """A file could not be fetched (network failure, HTTP error, missing source)."""


class ChecksumError(ValueError):
    """A fetched file's digest differs from the one pinned in the registry."""


class ArchiveError(ValueError):
    """An archive is corrupt, truncated, or has a member that is unsafe to extract."""
