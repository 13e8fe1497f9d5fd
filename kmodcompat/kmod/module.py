"""libkmod/libkmod-module.c: a module's info pairs and its lookup by name."""

from __future__ import annotations

import os

from ..files.bounded import MODULES_DEP, read_input
from ..records import ModuleRecord, path_to_modname
from .elf import KmodError
from .profile import Kmod


def get_info(kmod: Kmod, rec: ModuleRecord) -> list[tuple[str, str]]:
    """kmod_module_get_info(): .modinfo pairs followed by the signature pseudo-keys, as modinfo iterates them.

    Raises KmodError when the module has no ``.modinfo`` section.
    """
    if rec.section(".modinfo") is None:
        raise KmodError(kmod.missing_section_errno)
    items = [(k, v if v is not None else "") for k, v in rec.modinfo]
    sig = rec.signature
    if sig is None or not sig.kmod_accepts:
        return items
    hash_algo = sig.hash_algo
    if sig.digest_oid is not None and kmod.pkcs7_digest_names is not None:
        hash_algo = kmod.pkcs7_digest_names.get(sig.digest_oid)
        if hash_algo is None:
            return items  # kmod 30: fill_pkcs7() fails for a digest outside its table
    items.append(("sig_id", sig.id_type_name))
    if sig.signer is not None:
        items.append(("signer", sig.signer))
    items.append(("sig_key", hex_to_str(sig.key_id)))
    if hash_algo is not None:
        items.append(("sig_hashalgo", hash_algo))
    items.append(("signature", hex_to_str(sig.signature)))
    return items


def hex_to_str(b: bytes) -> str:
    """kmod_module_hex_to_str(): "AA:BB:..", a line break and two tabs after every 20 bytes."""
    parts = []
    n = len(b)
    for i, byte in enumerate(b):
        parts.append(f"{byte:02X}")
        if i < n - 1:
            parts.append(":\n\t\t" if (i + 1) % 20 == 0 else ":")
    return "".join(parts)


def lookup_module(name: str, dirname: str) -> str | None:
    """kmod_module_new_from_lookup()'s first source: the path of module ``name`` per
    ``dirname/modules.dep`` ('-' and '_' equivalent), or None."""
    want = name.replace("-", "_")
    try:
        data = read_input(os.path.join(dirname, "modules.dep"), MODULES_DEP)  # a FIFO is refused, not waited on
    except OSError:
        return None
    for line in data.split(b"\n"):
        rel = line.split(b":", 1)[0].decode("utf-8", "surrogateescape")
        if path_to_modname(rel) == want:
            return rel if rel.startswith("/") else os.path.join(dirname, rel)
    return None
