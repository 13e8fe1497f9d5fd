"""Renderings of one parsed module for humans (text) and scripts (JSON): `kmodcompat show`."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from .elf.image import machine_name, section_flags_text, section_type_name
from .modversions.basic import name_limit
from .records import ModuleRecord

SCHEMA_VERSION = 1


def module_json(rec: ModuleRecord) -> dict[str, Any]:
    """A JSON-ready dict of everything parsed; keys are stable (``schema_version``)."""
    e = rec.elf
    sig = rec.signature
    ext = rec.ext_versions
    return {
        "schema_version": SCHEMA_VERSION,
        "path": rec.path,
        "name": rec.name,
        "file_size": rec.file_size,
        "compression": rec.compression,
        "image_size": rec.image_size,
        "elf": {"class": e.elfclass, "endian": e.endian, "machine": e.machine, "machine_name": machine_name(e.machine),
                "type": e.type, "flags": e.flags, "osabi": e.osabi},
        "modversions_format": rec.modversions_format,
        "sections": [{"index": s.index, "name": s.name, "type": section_type_name(s.type), "flags": s.flags,
                      "flags_text": section_flags_text(s.flags), "offset": s.offset, "size": s.size,
                      "addralign": s.addralign, "entsize": s.entsize, "link": s.link, "info": s.info}
                     for s in rec.sections],
        "modinfo": [[k, v] for k, v in rec.modinfo],
        "imports": [{"name": i.name, "weak": i.weak} for i in rec.imports],
        "exports": [{"name": x.name, "crc": x.crc, "gpl_only": x.gpl_only, "namespace": x.namespace,
                     "section": x.section} for x in rec.exports],
        "versions": None if rec.versions is None else {
            "alloc": rec.versions.alloc, "size": rec.versions.size, "well_formed": rec.versions.well_formed,
            "entries": [{"crc": m.crc, "name": m.name, "terminated": m.terminated} for m in rec.versions.entries]},
        "ext_versions": None if ext is None else {
            "crcs_present": ext.crcs_section_index is not None, "names_present": ext.names_section_index is not None,
            "crcs_alloc": ext.crcs_alloc, "names_alloc": ext.names_alloc, "crcs_size": ext.crcs_size,
            "names_size": ext.names_size, "crc_count": ext.crc_count, "name_count": ext.name_count,
            "entries": [{"crc": m.crc, "name": m.name} for m in ext.entries]},
        "varlen_versions": None if rec.varlen_versions is None else {
            "entries": [{"crc": m.crc, "name": m.name} for m in rec.varlen_versions.entries]},
        "hashed_versions": None if rec.hashed_versions is None else {
            "entries": [{"index": i, "digest": d, "crc": m.crc, "name": m.name}
                        for i, d, m in zip(rec.hashed_versions.indices, rec.hashed_versions.digests,
                                           rec.hashed_versions.entries)]},
        "signature": None if sig is None else {
            "id_type": sig.id_type_name, "signer": sig.signer, "key_id": sig.key_id.hex(),
            "hash_algo": sig.hash_algo, "sig_len": sig.sig_len, "signature": sig.signature.hex(),
            "kmod_accepts": sig.kmod_accepts, "offset": sig.offset},
        "findings": [{"code": f.code, "message": f.message, "section": f.section} for f in rec.findings],
    }


def module_text(rec: ModuleRecord) -> str:
    e = rec.elf
    out = [f"{rec.path}",
           f"  module        {rec.name}",
           f"  ELF           ELF{e.elfclass} {e.endian}-endian {machine_name(e.machine)} (e_flags 0x{e.flags:x})",
           f"  size          {rec.file_size} bytes on disk, {rec.image_size} bytes image"
           + (f" ({rec.compression})" if rec.compression else ""),
           f"  modversions   {rec.modversions_format}",
           f"  imports       {len(rec.imports)}; exports {len(rec.exports)}"]
    sig = rec.signature
    if sig is not None:
        out.append(f"  signature     {sig.id_type_name}, {sig.hash_algo or '?'}, signer {sig.signer!r}"
                   + ("" if sig.kmod_accepts else " (kmod ignores it: malformed)"))
    out.append("")
    out.append("Sections:")
    rows = [[s.index, s.name, section_type_name(s.type).removeprefix("SHT_"), section_flags_text(s.flags),
             f"0x{s.offset:x}", s.size, s.addralign] for s in rec.sections]
    out.append(tabulate(rows, headers=["#", "name", "type", "flags", "offset", "size", "align"]))
    if rec.modinfo:
        out += ["", ".modinfo:"]
        out += [f"  {k}={v}" if v is not None else f"  {k}" for k, v in rec.modinfo]
    limit = name_limit(e.elfclass)
    if rec.versions is not None:
        v = rec.versions
        out += ["", f"__versions: {len(v.entries)} entries, {v.size} bytes"
                + ("" if v.alloc else ", not SHF_ALLOC") + ("" if v.well_formed else ", MALFORMED")]
        # A hashed record (the 2024 RFC, docs/formats.md §2.5) reads "sha256": say which import it hashes.
        hashed = {} if rec.hashed_versions is None else dict(zip(rec.hashed_versions.indices,
                                                                   rec.hashed_versions.entries))
        out += [f"  0x{m.crc:08x}  {m.name}" + ("" if m.terminated else "  [no NUL]")
                + ("" if i not in hashed else f"  [hashed: {hashed[i].name or 'no import hashes to it'}]")
                for i, m in enumerate(v.entries)]
    ext = rec.ext_versions
    if ext is not None:
        out += ["", f"__version_ext_crcs/__version_ext_names: {ext.crc_count} CRCs, {ext.name_count} names"]
        out += [f"  0x{m.crc:08x}  {m.name}" + (f"  [{len(m.name)} > {limit}: ext only]" if len(m.name) > limit else "")
                for m in ext.entries]
    if rec.varlen_versions is not None:
        out += ["", f"variable-length __versions (rejected 2023 format): {len(rec.varlen_versions.entries)} entries"]
        out += [f"  0x{m.crc:08x}  {m.name}" for m in rec.varlen_versions.entries]
    if rec.exports:
        out += ["", "Exports:"]
        rows = [[x.name, "" if x.crc is None else f"0x{x.crc:08x}", "GPL" if x.gpl_only else "", x.namespace or ""]
                for x in rec.exports]
        out.append(tabulate(rows, headers=["symbol", "crc", "license", "namespace"]))
    if rec.imports:
        out += ["", "Imports (.symtab UND):"]
        out += [f"  {i.name}" + (" (weak)" if i.weak else "") for i in rec.imports]
    if rec.findings:
        out += ["", "Findings:"]
        out += [f"  {f.code}: {f.message}" for f in rec.findings]
    return "\n".join(out) + "\n"
