"""The cache's record codec: exact round trips, and nothing but a valid record (or DecodeError) out of any bytes."""

from __future__ import annotations

import json
import random

import pytest

from kmodcompat.cache import codec
from kmodcompat.errors import ModuleReadError
from kmodcompat.records import ModuleRecord
from kmodcompat.parse.scan import parse_many

from . import oracle
from .paths import FUZZ_CORPUS, MODULES as MODULES_DIR

MODULES = sorted(str(p) for p in MODULES_DIR.rglob("*")
                 if p.is_file() and ".ko" in p.name and not p.name.endswith(".txt"))
CORPUS = sorted(str(p) for p in FUZZ_CORPUS.iterdir() if not p.name.endswith(".txt"))


def _same(a, b) -> bool:
    if isinstance(a, ModuleRecord):
        return a == b
    return (isinstance(b, ModuleReadError) and (a.path, a.reason, a.code, a.errno, a.detail, a.compression)
            == (b.path, b.reason, b.code, b.errno, b.detail, b.compression))


@pytest.fixture(scope="module")
def parsed():
    paths = MODULES + CORPUS
    return list(zip(paths, parse_many(paths, jobs=1)))


def test_every_fixture_round_trips_exactly(parsed):
    assert len(parsed) > 100 and any(isinstance(v, ModuleReadError) for _, v in parsed)
    for path, value in parsed:
        back = codec.decode(codec.encode(value), path)
        assert _same(value, back), path
        assert type(back) is type(value)


def test_a_non_utf8_name_round_trips(parsed):
    rec = next(v for _, v in parsed if isinstance(v, ModuleRecord) and v.imports)
    odd = "bad\udcff\udcfe"  # what records.text() makes of b"bad\xff\xfe"
    rec2 = type(rec)(**{**{f: getattr(rec, f) for f in rec.__slots__}, "imports": (rec.imports[0]._replace(name=odd),)})
    blob = codec.encode(rec2)
    assert blob.isascii()
    assert codec.decode(blob, "/x/bad\udcff.ko").imports[0].name == odd


def _doc(parsed) -> list:
    from dataclasses import replace

    recs = [v for _, v in parsed if isinstance(v, ModuleRecord)]
    rec = next(v for v in recs if v.versions and v.versions.entries and v.exports and v.imports)
    rec = replace(rec, signature=next(v.signature for v in recs if v.signature is not None))
    return json.loads(codec.encode(rec))


@pytest.mark.parametrize("where, value", [
    ((2,), True),                 # file_size: a bool is not an int
    ((2,), -1),                   # out of range
    ((2,), 1 << 64),
    ((2,), 1.5),
    ((3,), "lz4"),                # an unknown compression
    ((6, 0), 16),                 # elfclass
    ((6, 1), 1),                  # little_endian must be a bool
    ((7, 1), None),               # a section name
    ((7, 1), "a\0b"),             # a NUL inside a name
    ((7, 1), "\ud800"),           # a surrogate records.text() never makes
    ((9, 0), ["x"]),              # an import name that is a list
    ((12,), 0),                   # ksymtab_strings_terminated
    ((13, 2), "yes"),             # Export.gpl_only
    ((14, 3), 0),                 # entry_size 0 (well_formed would divide by it)
    ((14, 4, 2), 1),              # Modversion.terminated
    ((17, 9), "zz"),              # key_id not hex
    ((17, 13), None),             # kmod_accepts
])
def test_wrong_values_are_rejected(parsed, where, value):
    doc = _doc(parsed)
    target = doc
    for i in where[:-1]:
        target = target[i]
    target[where[-1]] = value
    with pytest.raises(codec.DecodeError):
        codec.decode(json.dumps(doc).encode(), "/m.ko")


@pytest.mark.parametrize("blob", [
    b"", b"{}", b"[1, 2]", b"null", b"[" * 100000, b"[1,\"r\"]", b"9" * 5000, b"\xff\xfe", b"[2,\"r\"]",
    b"[true,\"e\",\"r\",\"c\",1,null,null]", b"[1,\"e\",\"r\",\"c\",1,null,\"lz4\"]",
    b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.",
])
def test_other_bytes_are_rejected(blob):
    with pytest.raises(codec.DecodeError):
        codec.decode(blob, "/m.ko")


def test_rows_of_the_wrong_width_are_rejected(parsed):
    doc = _doc(parsed)
    doc[7] = doc[7][:-1]  # sections: one value short
    with pytest.raises(codec.DecodeError):
        codec.decode(json.dumps(doc).encode(), "/m.ko")
    doc = _doc(parsed)
    doc.append(0)  # a trailing field
    with pytest.raises(codec.DecodeError):
        codec.decode(json.dumps(doc).encode(), "/m.ko")


def test_mutated_blobs_give_a_valid_record_or_decode_error(parsed):
    """500 random mutations of encoded records (bytes, and JSON values swapped for others): every one either
    fails with DecodeError or decodes to a record whose every field re-encodes (no other exception, ever)."""
    rng = random.Random(15)
    blobs = [codec.encode(v) for _, v in parsed]
    values = [None, True, False, 0, -1, 1 << 64, 2.5, "", "\0", "\ud800", [], {}, [[]], "x" * 3]
    outcomes = {"rejected": 0, "valid": 0}
    for n in range(500):
        blob = bytearray(rng.choice(blobs))
        if n % 2:
            for _ in range(rng.randint(1, 8)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
        else:
            doc = json.loads(blob)
            target = doc
            while True:
                i = rng.randrange(len(target))
                if isinstance(target[i], list) and target[i] and rng.random() < 0.6:
                    target = target[i]
                    continue
                target[i] = rng.choice(values)
                break
            blob = bytearray(json.dumps(doc).encode())
        try:
            value = codec.decode(bytes(blob), "/m.ko")
        except codec.DecodeError:
            outcomes["rejected"] += 1
            continue
        outcomes["valid"] += 1
        assert _same(value, codec.decode(codec.encode(value), "/m.ko"))
        if isinstance(value, ModuleRecord):
            assert value.modversions_format is not None and value.name  # the derived views work on it
    assert outcomes["rejected"] > 300, outcomes


@pytest.mark.realtree
def test_a_real_tree_round_trips_exactly():
    root = oracle.tree_root("trixie-amd64")
    if root is None:
        pytest.skip("tree trixie-amd64 not available")
    paths = [str(p) for p in oracle.tree_modules(root)]
    for path, value in zip(paths, parse_many(paths)):
        assert _same(value, codec.decode(codec.encode(value), path)), path
