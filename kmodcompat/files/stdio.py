"""C stdio as kmod's tools read their text inputs (modules.order, modules.builtin, Module.symvers, System.map)."""

from __future__ import annotations


def fgets_lines(data: bytes, size: int) -> list[bytes]:
    """The successive results of ``fgets(line, size, fp)`` over ``data``.

    Each piece ends after a '\\n' or after ``size - 1`` bytes, whichever comes
    first: an over-long line is read as several, as depmod reads it.
    """
    if b"\r" not in data:
        # bytes.splitlines() ends lines at '\n', '\r' and '\r\n' only: without '\r' its pieces are
        # fgets()'s whenever none is too long for the buffer (one C call instead of a loop per line).
        lines = data.splitlines(keepends=True)
        if not lines or max(map(len, lines)) <= size - 1:
            return lines
    out = []
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\n", i, i + size - 1)
        end = j + 1 if j >= 0 else min(n, i + size - 1)
        out.append(data[i:end])
        i = end
    return out
