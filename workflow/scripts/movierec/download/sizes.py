"""Byte sizes shared by fetching and extracting: the copy chunk, and counts for people.

Both stages copy in chunks of `CHUNK_BYTES` and log sizes; one place keeps them
alike (and lets a test shrink the chunk for both).
"""

CHUNK_BYTES = 1 << 20


def human_size(n):
    """A byte count for people: 512 B, 3.4 KiB, 12.0 MiB, 1.20 GiB."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    if n < 1 << 30:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**30:.2f} GiB"
