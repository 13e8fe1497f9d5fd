"""depmod's output files, byte for byte: ``depmod_output()`` and its ``output_*`` callbacks.

Files in depmod's order (tools/depmod.c ``depfiles[]``): modules.dep,
modules.dep.bin, modules.alias, modules.alias.bin, modules.softdep,
modules.weakdep (kmod >= 33), modules.symbols, modules.symbols.bin,
modules.builtin.bin, modules.builtin.alias.bin, modules.devname.

With ``-n`` every callback writes to stdout and the ``*.bin`` ones return at
once, so stdout is the text files concatenated in that order and the
warnings of the binary writers (unmatched brackets, missing
modules.builtin) are not printed. The ``.bin`` files come from
:mod:`kmodcompat.depmod.index` (trie layout of the emulated release).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..records import PATH_MAX, path_to_modname, raw
from .diagnostics import ERROR, WARNING, Diagnostic, diag
from .index import Index, alias_normalize, builtin_alias_index_from_modinfo, layout_for_kmod_version
from .resolve import KERNEL, Depmod
from ..files.stdio import fgets_lines

__all__ = ["DepmodOutput", "render", "write_files"]



@dataclass(frozen=True, slots=True)
class DepmodOutput:
    """What depmod writes: files in order (name, bytes) and the messages printed meanwhile."""

    files: tuple[tuple[str, bytes], ...]
    diagnostics: tuple[Diagnostic, ...]
    dry_run: bool

    @property
    def stdout(self) -> bytes:
        """``depmod -n``: the text files, concatenated."""
        return b"".join(data for _, data in self.files)

    def file(self, name: str) -> bytes:
        return dict(self.files)[name]


def _dep_line(dm: Depmod, i: int) -> str:
    m = dm.modules[i]
    parts = [m.output_path + ":"]
    if dm.deps[i]:
        parts.extend(dm.modules[d].output_path for d in dm.all_dependencies(i))
    return " ".join(parts)


def _values(dm: Depmod, i: int, key: str) -> list[str]:
    """kmod_module_get_info()'s values of ``key``: "" for a string without '='."""
    return [v if v is not None else "" for k, v in dm.info[i] if k == key]


def _u32(text: str) -> int:
    """``%u`` of sscanf: strtoul() then the unsigned int store (wraps modulo 2**32)."""
    v = int(text)
    if abs(v) >= 1 << 64:
        v = (1 << 64) - 1
    return v & 0xFFFFFFFF


def _major_minor(value: str, kind: str) -> tuple[int, int] | None:
    """``sscanf(value, "<kind>-major-%u-%u", &maj, &min) == 2``."""
    m = re.match(rf"{kind}-major-\s*([+-]?\d+)-\s*([+-]?\d+)", value, re.ASCII)
    if m is None:
        return None
    return _u32(m.group(1)), _u32(m.group(2))


def _devname(dm: Depmod, diags: list[Diagnostic]) -> bytes:
    """``output_devname()``: header only before the first entry (kmod 30 and 34.2)."""
    out: list[str] = []
    for i, m in enumerate(dm.modules):
        devname = None
        typ = ""
        major = minor = 0
        for value in _values(dm, i, "alias"):
            if value.startswith("devname:"):
                devname = value[len("devname:"):]
            else:
                for kind, t in (("char", "c"), ("block", "b")):
                    mm = _major_minor(value, kind)
                    if mm is not None:
                        typ, (major, minor) = t, mm
                        break
            if typ and devname is not None:
                break
        if devname is None:
            continue
        if typ:
            if not out:
                out.append("# Device nodes to trigger on-demand module loading.\n")
            out.append(f"{m.name} {devname} {typ}{major}:{minor}\n")
        else:
            diags.append(diag(ERROR, "devname-without-major",
                              f"Module '{m.name}' has devname ({devname}) but lacks major and minor information. "
                              "Ignoring.", module=m.name))
    return raw("".join(out))


def _builtin_bin(dm: Depmod, layout: str, diags: list[Diagnostic]) -> bytes:
    """``output_builtin_bin()``: modname of each line whose first byte is a letter; others are reported."""
    data = dm.tree.builtin
    if data is None:
        diags.append(diag(WARNING, "builtin-missing",
                          f"could not open modules.builtin at {dm.tree.dirname}: "
                          f"{dm.tree.metadata_error('modules.builtin')}"))
        return b""  # the temporary file is renamed into place empty
    idx = Index()
    for line in fgets_lines(data, PATH_MAX):
        text = line.split(b"\0", 1)[0].decode("latin-1")
        if not ("a" <= text[:1] <= "z" or "A" <= text[:1] <= "Z"):
            diags.append(diag(ERROR, "builtin-invalid-line", f"Invalid modules.builtin line: {text}"))
            continue
        idx.insert(path_to_modname(text), "", 0)
    return idx.to_bytes(layout)


def _builtin_alias_bin(dm: Depmod, layout: str, diags: list[Diagnostic]) -> bytes:
    data = dm.tree.builtin_modinfo
    if data is None:
        diags.append(diag(WARNING, "builtin-modinfo-missing",
                          f"could not open modules.builtin.modinfo at {dm.tree.dirname}: "
                          f"{dm.tree.metadata_error('modules.builtin.modinfo')}"))
        return b""
    return builtin_alias_index_from_modinfo(data).to_bytes(layout)


def render(dm: Depmod, dry_run: bool = False, warn_dups: bool = False) -> DepmodOutput:
    """Every file depmod writes for ``dm`` (only the text ones with ``dry_run``, as ``-n``). ``warn_dups``:
    ``-w``, index_insert()'s duplicates reported as output_*_bin() do (``WRN("duplicate module ...")``)."""
    if dm.failed:
        return DepmodOutput((), (), dry_run)
    layout = layout_for_kmod_version(dm.kmod.version)
    diags: list[Diagnostic] = []
    files: list[tuple[str, bytes]] = []
    mods = dm.modules
    n = len(mods)

    lines = [_dep_line(dm, i) for i in range(n)]
    files.append(("modules.dep", raw("".join(line + "\n" for line in lines))))
    if not dry_run:
        idx = Index()
        for i, line in enumerate(lines):
            if idx.insert(mods[i].name, line, i) and warn_dups:
                diags.append(diag(WARNING, "duplicate", f"duplicate module deps:\n{line}", module=mods[i].name))
        files.append(("modules.dep.bin", idx.to_bytes(layout)))

    alias_lines = ["# Aliases extracted from modules themselves.\n"]
    for i, m in enumerate(mods):
        alias_lines += [f"alias {v} {m.name}\n" for v in _values(dm, i, "alias")]
    files.append(("modules.alias", raw("".join(alias_lines))))
    if not dry_run:
        idx = Index()
        for i, m in enumerate(mods):
            for v in _values(dm, i, "alias"):
                key = alias_normalize(v)
                if key is None:
                    diags.append(diag(WARNING, "unmatched-bracket", f"Unmatched bracket in {v}", module=m.name))
                    continue
                if idx.insert(key, m.name, i) and warn_dups:
                    diags.append(diag(WARNING, "duplicate", f"duplicate module alias:\n{key} {m.name}",
                                      module=m.name))
        files.append(("modules.alias.bin", idx.to_bytes(layout)))

    soft = ["# Soft dependencies extracted from modules themselves.\n"]
    for i, m in enumerate(mods):
        soft += [f"softdep {m.name} {v}\n" for v in _values(dm, i, "softdep")]
    files.append(("modules.softdep", raw("".join(soft))))
    if dm.kmod.writes_weakdep:
        weak = ["# Weak dependencies extracted from modules themselves.\n"]
        for i, m in enumerate(mods):
            weak += [f"weakdep {m.name} {v}\n" for v in _values(dm, i, "weakdep")]
        files.append(("modules.weakdep", raw("".join(weak))))

    owned = [s for s in dm.symbol_order() if s.owner != KERNEL]
    files.append(("modules.symbols", raw("# Aliases for symbols, used by symbol_request().\n" + "".join(
        f"alias symbol:{s.name} {mods[s.owner].name}\n" for s in owned))))
    if not dry_run:
        idx = Index()
        for s in owned:
            if idx.insert("symbol:" + s.name, mods[s.owner].name, s.owner) and warn_dups:
                diags.append(diag(WARNING, "duplicate", f"duplicate module syms:\nsymbol:{s.name} {mods[s.owner].name}",
                                  module=mods[s.owner].name))
        files.append(("modules.symbols.bin", idx.to_bytes(layout)))
        files.append(("modules.builtin.bin", _builtin_bin(dm, layout, diags)))
        files.append(("modules.builtin.alias.bin", _builtin_alias_bin(dm, layout, diags)))
    files.append(("modules.devname", _devname(dm, diags)))
    return DepmodOutput(tuple(files), tuple(diags), dry_run)


def write_files(out: DepmodOutput, outdir: str) -> None:
    """Write each file as depmod does: a temporary name in ``outdir``, then rename over the old one."""
    os.makedirs(outdir, exist_ok=True)
    for name, data in out.files:
        tmp = os.path.join(outdir, f"{name}.{os.getpid()}.kmodcompat")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, os.path.join(outdir, name))
