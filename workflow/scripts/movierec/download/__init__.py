"""Fetch a release's files, verify them, and unpack archives safely.

A release is a list of files, each ``{"url": ..., "sha256": ..., "md5": ...}``
(checksums may be null). `download_release` fetches them over http(s) or from
``file://`` URLs, or from a `mirror` that holds the same files under their
official names, and builds the output directory beside its final place so that
a failure at any step (network, checksum, unsafe or corrupt archive) leaves
nothing behind where the workflow looks for it.

The modules follow what can go wrong, so each can be read on its own:

- `release`: the release list, the mirror, and the output directory that
  appears whole or not at all;
- `fetch`: one file's bytes, with retries, a deadline, a minimum rate, and
  its checksums;
- `archive`: unpacking a zip without trusting its names or its sizes;
- `errors` and `sizes`: what the other three share.
"""

from movierec.download.errors import ArchiveError, ChecksumError, DownloadError
from movierec.download.release import download_release, official_name

__all__ = ["ArchiveError", "ChecksumError", "DownloadError", "download_release", "official_name"]
