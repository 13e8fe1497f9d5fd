"""C stdio as depmod reads its text inputs."""

from __future__ import annotations


def fgets_lines(data: bytes, size: int) -> list[bytes]:
    """The successive results of ``fgets(line, size, fp)`` over ``data``.

    Each piece ends after a '\\n' or after ``size - 1`` bytes, whichever comes
    first: an over-long line is read as several, as depmod reads it.
    """
    out = []
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\n", i, i + size - 1)
        end = j + 1 if j >= 0 else min(n, i + size - 1)
        out.append(data[i:end])
        i = end
    return out
