"""kmodcompat.files.bounded: every non-module input is a regular file, read within a cap, never waited on."""

from __future__ import annotations

import errno
import gzip
import os

import pytest

from kmodcompat.files.bounded import (DEPMOD_CONFIG, KINDS, MAX_GZIP_MEMBERS, MODULE_SYMVERS, MODULES_ORDER,
                                      InputFileError, InputKind, file_type, read_input)

from .hostile_trees import gzip_bomb, hang_guard, special


def _refused(path, kind=MODULES_ORDER, **kw) -> InputFileError:
    # A hang guard, not a timing: a FIFO opened without O_NONBLOCK blocks forever. (That a bomb is not
    # read to its end is shown by the error itself, raised at the cap.)
    with hang_guard(60), pytest.raises(InputFileError) as info:
        read_input(path, kind, **kw)
    e = info.value
    assert "\n" not in str(e) and str(e) == f"{path}: {e.strerror}" and e.filename == str(path)
    return e


@pytest.mark.parametrize("kind,reason", [("fifo", "not a regular file (FIFO)"),
                                         ("socket", "not a regular file (socket)"),
                                         ("zero", "not a regular file (symbolic link to a character device)"),
                                         ("dangling", "No such file or directory"),
                                         ("loop", "Is a directory")])
def test_special_files_are_refused_without_blocking(tmp_path, kind, reason):
    special(tmp_path / "f", kind)
    assert _refused(tmp_path / "f").strerror == reason


def test_dev_null_reads_as_empty_and_devices_do_not():
    assert read_input("/dev/null", MODULE_SYMVERS) == b""  # depmod -E /dev/null
    assert _refused("/dev/zero").errno == errno.EINVAL
    assert file_type(os.stat("/dev/zero").st_mode) == "character device"


def test_sizes_are_capped_on_what_is_read(tmp_path):
    p = tmp_path / "modules.order"
    p.write_bytes(b"x" * MODULES_ORDER.limit)
    assert len(read_input(p, MODULES_ORDER)) == MODULES_ORDER.limit
    p.write_bytes(b"x" * (MODULES_ORDER.limit + 1))
    e = _refused(p)
    assert e.errno == errno.EFBIG and e.strerror == "larger than the 8 MiB limit for a modules.order"
    assert all(k.limit >= 1 << 20 for k in KINDS) and DEPMOD_CONFIG.limit == 1 << 20


def test_gzip_is_inflated_only_when_asked_and_within_the_cap(tmp_path):
    p = tmp_path / "symvers.gz"
    data = b"0x12345678\tsym\tvmlinux\tEXPORT_SYMBOL\t\n" * 1000
    p.write_bytes(gzip.compress(data[:20000]) + gzip.compress(data[20000:]) + b"\0" * 8)  # two members, padding
    assert read_input(p, MODULE_SYMVERS, gzip=True) == data
    assert read_input(p, MODULE_SYMVERS).startswith(b"\x1f\x8b")  # depmod -E reads the bytes as they are
    p.write_bytes(gzip_bomb(3 << 30))  # 3 GiB of zeros
    assert "inflates past the 32 MiB limit" in _refused(p, MODULE_SYMVERS, gzip=True).strerror
    kind = InputKind("test", 1 << 20)
    for bad, why in ((gzip.compress(b"x" * 500)[:-12], "truncated"), (gzip.compress(b"x") + b"junk", "non-gzip"),
                     (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "corrupt gzip stream"),
                     (gzip.compress(b"") * (MAX_GZIP_MEMBERS + 1), "concatenated gzip members")):
        p.write_bytes(bad)
        assert why in _refused(p, kind, gzip=True).strerror


def test_a_module_fifo_with_no_writer_is_refused_and_a_pipe_with_one_is_read(tmp_path):
    """read_module_bytes: a FIFO in a tree used to cost the 60 s parse deadline per scan (open() waited for a
    writer); a pipe someone writes, even late (``show <(sleep 1; xz -dc m.ko.xz)``), is still a module."""
    import threading
    import time

    from kmodcompat.errors import ModuleReadError
    from kmodcompat.files.opener import read_module_bytes

    fifo = tmp_path / "fifo.ko"
    special(fifo, "fifo")
    with hang_guard(60), pytest.raises(ModuleReadError) as info:
        read_module_bytes(fifo)
    assert info.value.reason == "not a regular file (FIFO with no writer)"
    module = b"\x7fELF" + bytes(range(256)) * 64
    r, w = os.pipe()
    opened = threading.Event()

    def late_writer():  # the reader opens first and finds the pipe empty but held: EAGAIN, then blocks
        opened.wait(10)
        time.sleep(0.2)  # not a timing check: makes the EAGAIN path the likely one
        os.write(w, module)
        os.close(w)

    t = threading.Thread(target=late_writer)
    t.start()
    try:
        with hang_guard(60):
            opened.set()
            assert read_module_bytes(f"/dev/fd/{r}").data == module
    finally:
        t.join()
        os.close(r)
