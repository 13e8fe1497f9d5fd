"""The answer first: the report's ``summary`` (one verdict for the tree as built, the risks ranked by
what they cost a user of this tree) and its headlines, computed once from the report dict.

Who matters for a tree (:func:`audience`): the kmod of the tree's own
distribution release and of the one before (a new kernel is installed while
the old release's kmod still runs ``depmod``: Debian's linux-image postinst
calls the installed ``depmod``), the kernel the modules are for, and the
weak-modules gate of its distribution family (Red Hat's ``weak-modules`` for
``.elN`` kernels, SUSE's ``weak-modules2`` for theirs). Every other consumer
model is "other"; module-init-tools 3.16 (2011, no ``.ko.xz``/``.ko.zst``) is
"legacy" and comes last, so it never drowns what matters.

What the renderers show first comes from here; Markdown, HTML and the CLI's
stderr line read ``doc["summary"]`` and ``doc["headlines"]``, never recompute.
"""

from __future__ import annotations

import re
from typing import Any

from ..consumers import CONSUMERS, KERNEL_6_13, KERNEL_6_14, WEAK_MODULES, WEAK_MODULES2, of_kind, short_title
from ..kmod.profile import KMOD30, KMOD34
from ..records import ModversionsFormat as Fmt

#: Verdicts that cost the user something (a module lost, misread, refused, warned about falsely).
BAD_VERDICTS = ("unreadable", "refuses", "false-mismatch", "partial", "incompatible", "loads-tainted",
                "loads-unchecked")
#: Worst first: the colour of a matrix cell is its worst verdict's.
SEVERITY = {"unreadable": 3, "refuses": 3, "false-mismatch": 3, "incompatible": 2, "partial": 2,
            "loads-tainted": 2, "loads-unchecked": 1}
#: Formats a tree could really be rebuilt in: CONFIG_MODVERSIONS off, and Linux 6.14's
#: CONFIG_EXTENDED_MODVERSIONS with and without CONFIG_BASIC_MODVERSIONS (scripts/Makefile.modpost).
PLAUSIBLE_FORMATS = (Fmt.EXT_ONLY, Fmt.BASIC_EXT)
#: A tree's MODVERSIONS flavour (report "tree.modversions"), by the format its versioned modules are in: the
#: format's id, the two with extended tables spelled out; "mixed" for several (report/__init__.py _identity).
TREE_FLAVOURS: dict[str, str] = {Fmt.NONE: Fmt.NONE.value, Fmt.BASIC: Fmt.BASIC.value, Fmt.BASIC_EXT: "basic+extended",
                                 Fmt.EXT_ONLY: "extended-only"}
#: A flavour → the simulated format the tree already is.
_FLAVOUR_FORMAT = {flavour: fmt for fmt, flavour in TREE_FLAVOURS.items()}
HYPOTHETICAL: dict[str, str] = {Fmt.EXT_ONLY: "if built extended-only", Fmt.BASIC_EXT: "if built basic + extended",
                                Fmt.NONE: "if built without MODVERSIONS", Fmt.BASIC: "if built basic only",
                                Fmt.VARLEN: "if built variable-length (rejected 2023)",
                                Fmt.HASHED: "if built with hashed long names (2024 RFC)"}
#: Debian release → the kmod model its kmod package follows (bookworm 30, trixie 34.2, forky/sid 34).
_DEBIAN_KMOD = {11: None, 12: KMOD30.id, 13: KMOD34.id, 14: KMOD34.id}
#: Debian's kernel series per release, for ABI names without "+debN" (6.1.0-57-amd64 is bookworm's).
_DEBIAN_SERIES = {(4, 19): 10, (5, 10): 11, (6, 1): 12, (6, 12): 13}

UNITS = ("Units: an import is an undefined symbol of a module; an import version is a CRC entry it records: "
         "one per versioned import, plus module_layout where the tree has it.")


def _kernel_series(kver: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", kver or "")
    return (int(m[1]), int(m[2])) if m else None


def distribution(kver: str) -> tuple[str | None, int | None]:
    """(family, release) a kernel release string names: ("debian", 13) for 6.12.117+deb13-amd64."""
    kver = kver or ""
    m = re.search(r"\+deb(\d+)", kver)
    if m:
        return "debian", int(m[1])
    if re.match(r"\d+\.\d+\.\d+-\d+-[a-z0-9]", kver):  # Debian's ABI names before +debN: 6.1.0-57-amd64
        series = _kernel_series(kver)
        return "debian", None if series is None else _DEBIAN_SERIES.get(series)
    if re.search(r"\.el\d+", kver):
        return "redhat", None
    if re.search(r"-(default|azure|kvmsmall|rt|64kb)$", kver) and re.match(r"\d+\.\d+\.\d+-\d+", kver):
        return "suse", None
    return None, None


def audience(doc: dict) -> dict[str, str]:
    """Consumer id → "tree" (matters for this tree), "other" or "legacy"."""
    consumers = list(doc["consumers"]["totals"])
    kver = doc["tree"]["kernel_release"]
    family, release = distribution(kver)
    mine: set[str] = set()
    if family == "debian" and release is not None:
        mine |= {k for k in (_DEBIAN_KMOD.get(release), _DEBIAN_KMOD.get(release - 1)) if k}
    else:  # no known distribution: the current kmod release and the one before
        mine |= {KMOD34.id, KMOD30.id}
    series = _kernel_series(kver)
    # A Debian kernel (tree.kernel_loader) is modelled by Debian's profile of its era, not kernel.org's.
    debian = (doc["tree"].get("kernel_loader") or {}).get("models") or ()
    if series is not None and debian:
        mine.add(next(c for c in debian if CONSUMERS[c].profile.reads_extended == (series >= (6, 14))))
    elif series is not None:
        mine.add(KERNEL_6_14.id if series >= (6, 14) else KERNEL_6_13.id)
    if family == "redhat":
        mine.add(WEAK_MODULES.id)
    elif family == "suse":
        mine.add(WEAK_MODULES2.id)
    return {c: "tree" if c in mine else "legacy" if c in CONSUMERS and CONSUMERS[c].legacy else "other"
            for c in consumers}


def not_applicable(doc: dict) -> dict[str, str]:
    """Consumer id → why its CRC verdicts do not apply to this tree."""
    if doc["tree"]["kernel_modversions"] is not False:
        return {}
    why = "kernel without MODVERSIONS: no CRC is checked"
    return {c: why for c in doc["consumers"]["totals"] if c in of_kind("kernel") + of_kind("crc-gate")}


def affected(t: dict) -> int:
    """Modules a consumer's totals show as costing the user something."""
    return sum(n for v, n in t["verdicts"].items() if v in BAD_VERDICTS)


def worst(t: dict) -> str | None:
    bad = [v for v in t["verdicts"] if v in BAD_VERDICTS and t["verdicts"][v]]
    return max(bad, key=lambda v: SEVERITY[v]) if bad else None


def _n(x: int) -> str:
    return f"{x:,}"


def _count(x: int, noun: str) -> str:
    """"1 module", "4,230 modules"."""
    return f"{x:,} {noun}" if x == 1 else f"{x:,} {noun}s" if not noun.endswith("y") else f"{x:,} {noun[:-1]}ies"


def _what(t: dict, cid: str) -> str:
    """What goes wrong for one consumer, in a few words ("" when nothing does)."""
    v = t["verdicts"]
    parts = []
    if v.get("refuses"):
        parts.append(f"refuses {_count(v['refuses'], 'module')}")
    if v.get("unreadable"):
        parts.append(f"cannot read {_count(v['unreadable'], 'module')}")
    if v.get("loads-tainted"):
        parts.append(f"force-loads {_count(v['loads-tainted'], 'module')} (taints the kernel)")
    if v.get("incompatible"):
        parts.append(f"rejects {_count(v['incompatible'], 'module')} as kABI-incompatible")
    if t["lost"] and t["modules_losing"] != v.get("unreadable", 0):  # else "cannot read" says it
        parts.append(f"loses {_count(t['lost'], 'import version')} in {_count(t['modules_losing'], 'module')}")
    if t["false_messages"] and cid not in of_kind("crc-gate"):  # a gate's false mismatches are its "incompatible"
        where = "" if t["modules_false"] == t["modules_losing"] else f" in {_count(t['modules_false'], 'module')}"
        parts.append(f"{_count(t['false_messages'], 'false warning')}{where}")
    if t["misread"]:
        parts.append(f"misreads {_count(t['misread'], 'entry')}")
    if not parts and v.get("loads-unchecked"):
        parts.append(f"loads {_count(v['loads-unchecked'], 'module')} with imports unchecked")
    # One line a person reads: the worst effects first, the rest is in the consumer tables.
    out = parts[:1]
    for p in parts[1:]:
        if len("; ".join(out + [p])) > 80:
            break
        out.append(p)
    return "; ".join(out)


def _title(cid: str) -> str:
    return short_title(cid)


def summary(doc: dict) -> dict:
    """The ``summary`` object: verdict, key figures, ranked risks, what does not apply, units."""
    from ..views import AS_IS

    roles = audience(doc)
    na = not_applicable(doc)
    totals = doc["consumers"]["totals"]
    risks = []
    rank = {"tree": 0, "other": 1, "legacy": 3}

    def add(cid: str, t: dict, fmt: str, tier: int) -> None:
        what = _what(t, cid)
        if not what or cid in na:
            return
        label = HYPOTHETICAL.get(fmt, f"if built {fmt}") if fmt != AS_IS else "as built"
        risks.append({"tier": tier, "consumer": cid, "title": _title(cid), "audience": roles[cid],
                      "format": fmt, "hypothetical": fmt != AS_IS, "modules": affected(t),
                      "worst": worst(t), "lost": t["lost"], "false_messages": t["false_messages"],
                      "text": f"{label.capitalize()}: {_title(cid)} {what}."})

    for cid, t in totals.items():
        add(cid, t, AS_IS, rank[roles[cid]])
    for fmt in PLAUSIBLE_FORMATS:
        if fmt == _FLAVOUR_FORMAT.get(doc["tree"]["modversions"]):
            continue
        for cid, t in doc["simulation"].get(fmt, {}).items():
            if roles[cid] == "tree":
                add(cid, t, fmt, 2)
    risks.sort(key=lambda r: (r["tier"], -r["modules"], list(totals).index(r["consumer"])))
    mine = [c for c in totals if roles[c] == "tree" and c not in na]
    bad_mine = [r for r in risks if r["tier"] == 0]
    c = doc["counts"]
    if bad_mine:
        n = max(r["modules"] for r in bad_mine)
        who = ", ".join(r["title"] for r in bad_mine[:3]) + (" and more" if len(bad_mine) > 3 else "")
        verdict = f"As built: breaks for {who}: up to {_n(n)} of {_count(c['parsed'], 'module')} affected."
    elif mine:
        false = sum(totals[x]["false_messages"] for x in mine if x not in of_kind("crc-gate"))
        if not next(iter(totals.values()))["versioned_imports"]:
            verdict = (f"As built: no module carries a CRC{' (a kernel without MODVERSIONS)' if na else ''}: "
                       f"nothing to lose; {_count(false, 'false warning')}.")
        else:
            sees = "sees" if len(mine) == 1 else "see"
            verdict = (f"As built: {_join([_title(x) for x in mine])} {sees} every versioned import; nothing lost; "
                       f"{_count(false, 'false warning')}.")
    else:
        verdict = "As built: no consumer model applies to this tree."
    if c["unreadable"]:
        verdict += f" {_count(c['unreadable'], 'module')} unreadable."
    u = doc["crc_usefulness"]
    first: dict[str, Any] = next(iter(totals.values()), {})
    versioned = first.get("versioned_imports", 0)
    ok = not bad_mine and not c["unreadable"]
    if ok:
        short = "as built, nothing lost"
    elif bad_mine:
        short = "as built, breaks for " + ", ".join(r["title"] for r in bad_mine[:3])
    else:
        short = f"as built, {_count(c['unreadable'], 'module')} unreadable"
    return {
        "ok": ok,
        "verdict": verdict,
        "short": short,
        "consumers_for_tree": mine,
        "audience": roles,
        "key_figures": {"modules": c["modules"], "unreadable": c["unreadable"], "imports": c["imports"],
                        "import_versions": versioned, "real_checks": u["real_checks"],
                        "modversions": doc["tree"]["modversions"],
                        "kernel_modversions": doc["tree"]["kernel_modversions"]},
        "risks": [{k: v for k, v in r.items() if k != "tier"} for r in risks],
        "not_applicable": _na_lines(na),
        "units": UNITS,
    }


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _na_lines(na: dict[str, str]) -> list[str]:
    """Said once, not as breaks."""
    if not na:
        return []
    return ["Not applicable: the kernel is built without MODVERSIONS ('modversions' not in vermagic): "
            "it checks no CRC.",
            "So no kernel CRC refusal is a finding; the kernel and weak-modules figures assume a MODVERSIONS build."]


def headlines(doc: dict) -> list[str]:
    """The top findings, one fact per line, most important first: the verdict, what does not apply,
    the risks (as built before hypothetical, legacy last), then the facts about the CRCs."""
    s = doc["summary"]
    out = [s["verdict"]]
    if doc["tree"].get("simulated_by"):  # what the tree is comes before what it does
        out.append(doc["tree"]["simulated_by"]["line"])
    out += s["not_applicable"]
    c = doc["counts"]
    skipped = sum(1 for x in doc["unreadable"] if x["code"] == "skipped")
    if skipped:
        out.append(f"{_n(skipped)} path(s) skipped (special files, dangling or looping links); see 'Unreadable'.")
    out += [r["text"] for r in s["risks"]]
    ln = doc["long_names"]
    if ln["exports"]["total"] or ln["imports"]["total"]:
        rust = {x["name"]: x["rust"] for part in ("exports", "imports") for x in ln[part]["names"]}
        r = sum(rust.values())
        out.append(f"Names of {ln['limit'] + 1}+ characters, which stop a BASIC-only build: {_n(ln['exports']['total'])} "
                   f"exported, {_n(ln['imports']['total'])} imported ({_n(len(rust) - r)} C, {_n(r)} Rust).")
    u = doc["crc_usefulness"]
    if u["imports"]:
        versioned = u["versioned_basic"] + u["versioned_ext_only"]
        out.append(f"{100.0 * versioned / u['imports']:.1f}% of {_n(u['imports'])} imports carry a CRC"
                   + (f" ({_n(u['versioned_ext_only'])} only in the extended tables)" if u["versioned_ext_only"]
                      else "") + f"; {_n(u['real_checks'])} are real checks.")
        if u["placeholder_int"]:
            out.append(f"{_n(u['placeholder_int'])} CRC(s) are the placeholder of 'int NAME': "
                       f"{_n(u['placeholder_on_functions'])} on functions (check only the name), "
                       f"{_n(u['placeholder_unknown_kind'])} of unknown kind.")
    g = doc["graph"]
    if g["cycles"]:
        out.append(f"{_n(len(g['cycles']))} dependency cycle(s): depmod reports them, modprobe cannot load them.")
    # Only when the kernel's exports are known: otherwise they are not checkable (graph.not_checkable).
    if g["unresolved"]["strong"]:
        out.append(f"{_n(g['unresolved']['strong'])} import(s) resolve to no exporter in the tree or the kernel.")
    if doc["findings"]["by_code"]:
        worst_codes = ", ".join(f"{k} ({v})" for k, v in list(doc["findings"]["by_code"].items())[:3])
        out.append(f"Malformed or noteworthy tables: {worst_codes}.")
    if c["unreadable"] and not any("unreadable" in h for h in out[:1]):
        out.append(f"{_n(c['unreadable'])} module(s) could not be read; see 'Unreadable modules'.")
    return out
