"""kmodcompat.depmod.ere: depmod's kernel patterns as glibc reads them, in bounded time.

The oracle is glibc itself (regcomp(REG_EXTENDED | REG_NOSUB) + regexec through
ctypes, what depmod calls): fixed cases with every construct and error class,
then random patterns over an alphabet of ERE syntax. bench/fuzz_trees.py
--patterns runs the comparison for hundreds of thousands of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random

import pytest

from kmodcompat.depmod.ere import MAX_DEPTH, PatternTooComplex, compile_ere, ere_search

from .hostile_trees import hang_guard, random_pattern

try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.regcomp, _LIBC.regexec  # noqa: B018
    _GNU = ctypes.CDLL(None).gnu_get_libc_version
except (OSError, AttributeError):
    _LIBC = None


def glibc(pattern: bytes, text: bytes) -> bool | None:
    """regexec() == 0, or None when regcomp() fails."""
    buf = ctypes.create_string_buffer(256)  # sizeof(regex_t) is 64 on x86-64
    if _LIBC.regcomp(buf, pattern, 1 | 8) != 0:  # REG_EXTENDED | REG_NOSUB
        return None
    try:
        return _LIBC.regexec(buf, text, 0, None, 0) == 0
    finally:
        _LIBC.regfree(buf)


def ours(pattern: bytes, text: bytes) -> bool | None:
    prog = compile_ere(pattern)
    return None if prog is None else ere_search(prog, text)


CASES = [b"6\\.1\\..*", b"^6", b"^7", b"amd64$", b"a|", b"(|a)", b"()", b"*a", b"a**", b"^*", b"a{2}", b"a{,2}",
         b"a{2,1}", b"a{", b"a{1", b"a{x}", b"[a-]", b"[]a]", b"[^]a]", b"[a-z]+", b"[[:digit:]]+-[[:alpha:]]+",
         b"[[:foo:]]", b"[[.a.]]", b"[[=a=]]", b"[[.ab.]]", b"[z-a]", b"[a-c-e]", b"[[:alpha:]-z]", b"[[:alpha:]-]",
         b"\\", b"a\\", b"(a)\\1", b"(6)\\.\\1", b"\\1", b"(a\\1)", b"(a)|\\1", b"\\<6", b"\\bamd", b"\\Bmd", b"amd\\>",
         b"\\w+", b"\\W", b"\\s", b"\\S", b"\\`6", b"64\\'", b"(", b")", b"a)", b"(a", b"[", b"[a", b"[^", b"{", b"}",
         b"a{1,2,3}", b"a{0}", b"(a){0}b", b"x{0,0}", b"a+?", b"a|*b", b"(*a)", b"a|^6", b"6|$", b"[\\d]", b"\\d",
         b"a{32768}", b"[[:alpha:]", b"[[", b"[]", b"[]]", b"[!--]", b"[a--]", b"[--z]", b"(a|b)*c", b"((((6))))",
         b"(((a*)*)*)*$", b".", b"", b"$", b"^$", b"a^", b"$a", b"6\\b", b"[.]", b"a{1}{2}", b"x\\9",
         b"(6)(1)(2)(3)(4)(5)(6)(7)(8)(9)\\9"]
TEXTS = [b"6.1.0-13-amd64", b"6.12.0-1-amd64", b"", b"a", b"aa", b"6.6", b"abc", b"-", b"]", b"a]", b"amd 64"]


@pytest.mark.skipif(_LIBC is None, reason="no glibc to compare with")
def test_matches_glibc_on_every_construct():
    for p in CASES:
        for t in TEXTS:
            assert ours(p, t) == glibc(p, t), (p, t)


@pytest.mark.skipif(_LIBC is None, reason="no glibc to compare with")
def test_matches_glibc_on_random_patterns():
    rng = random.Random(15)
    for _ in range(400):
        p = random_pattern(rng).encode()
        if b"\\" in p and b"{" in p and any(c in p for c in b"123456789"):
            continue  # back-references to a group repeated by {n}: see test_known_glibc_difference
        for t in (b"6.1.0-13-amd64", bytes(rng.choice(b"a6.-_") for _ in range(rng.randint(0, 8)))):
            try:
                got = ours(p, t)
            except PatternTooComplex:
                continue
            assert got == glibc(p, t), (p, t)


def test_time_is_linear_where_backtracking_is_exponential():
    text = b"6.1-" + b"a" * 2000
    # A backtracking matcher takes ~2^2000 steps here: a 60 s guard tells hang from linear on any
    # machine, however loaded (timings themselves belong in bench/).
    with hang_guard(60):
        for p in (b"(a*)*b", b"((a|aa)*)*$", b"(a|a)*(a|a)*(a|a)*c", b"(.*)*x", b"(a+)+b"):
            ere_search(compile_ere(p), text)


def test_caps_raise_instead_of_running_on():
    with pytest.raises(PatternTooComplex):
        compile_ere(b"(" * (MAX_DEPTH + 1) + b"a" + b")" * (MAX_DEPTH + 1))
    with pytest.raises(PatternTooComplex):
        compile_ere(b"(a{1000}){1000}")
    with pytest.raises(PatternTooComplex):
        compile_ere(b"((){30000}){30000}")  # empty operands still cost
    with pytest.raises(PatternTooComplex):
        ere_search(compile_ere(b"((a*)*)*(\\1)*(\\2)*x"), b"a" * 400)
    long = b"a|" * 5000 + b"6"  # no recursion on long patterns (the tree is 5,000 alternatives deep)
    assert ere_search(compile_ere(long), b"6.1") is True
    assert ere_search(compile_ere(b"x" * 15000 + b"|6"), b"6.1") is True


@pytest.mark.skipif(_LIBC is None, reason="no glibc to compare with")
def test_known_glibc_difference():
    """glibc misses matches of a back-reference to a group that {n} repeats when something comes between
    (its backtracking over duplicated subexpressions): ``(()){2}.\\1`` matches nothing in glibc 2.36, though
    ``(())`` matches the empty string twice, ``.`` any character and ``\\1`` the empty string. kmodcompat
    answers as POSIX defines it. No depmod.d pattern has a back-reference."""
    for p in (b"(()){2}.\\1", b"(()){9}*.\\1[[:digit:]]"):
        assert ours(p, b"6.1") is True
        assert glibc(p, b"6.1") in (False, True)  # False in 2.36; a fixed glibc would say True
