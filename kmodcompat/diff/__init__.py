"""Old against new: what changed between two builds of a module or of a whole tree, and who it breaks.

Users build the same kernel or module twice (old and new kernel, old and new
toolchain, BASIC against EXTENDED MODVERSIONS) and need the exact difference,
grouped by cause. The public API:

* :func:`diff_modules` (``old_rec, new_rec``) → :class:`ModuleDiff`: section
  layout (added, removed, renamed-looking, resized, type/flags/alignment/
  entry-size and order changes), import version entries (moved between
  ``__versions`` and the extended tables, appeared, disappeared, changed CRC),
  ``.modinfo`` keys as modinfo prints them (signer, key and algorithm included),
  imports, exports, and each consumer's verdict before and after.
* :func:`diff_trees` (``old_tree, new_tree``) → :class:`TreeDiff`: the same
  per module (matched by depmod's module name), plus the kABI diff (exports of
  the kernel image and of every module, with their importers and the
  consumer-visible effect on old builds), the dependency diff (modules.dep
  lines, cycles, unresolved imports) and :class:`Pattern` summaries that group
  ten thousand per-module changes into their causes.
* :func:`kmodcompat.report.diff_json.to_json` → the dict that
  ``report/diff-schema.json`` describes; :mod:`kmodcompat.report.diff_render`
  renders it as text, Markdown or HTML. Serialising is the report's job:
  nothing in this package imports :mod:`kmodcompat.report`.
* :func:`exit_status`: abidiff's bitmask: 0 nothing changed,
  :data:`EXIT_CHANGE` (4) something changed, plus :data:`EXIT_INCOMPATIBLE`
  (8) when a change breaks a consumer (so 12), 1 error, 2 usage.
* a kABI policy (:class:`~.policy.KabiPolicy`: symbol lists and severity rules,
  passed as ``policy=`` to :func:`diff_trees`, :func:`diff_export_sides`,
  :func:`diff_modules`) judges each kABI change (:func:`~.policy.judge_kabi`);
  the result rides on the diff record (``.policy``), and the document's exit
  status is then 0 when nothing the policy fails.

What counts as incompatible (:attr:`ModuleDiff.incompatible`,
:attr:`TreeDiff.incompatible`): an export removed, its CRC changed (unless
the new build has none: a kernel without MODVERSIONS checks nothing), made
GPL-only, or moved into another namespace; a consumer's verdict falling into
the "broken" class (refuses, unreadable, false mismatch) from a better one;
a module that became unreadable; a new dependency cycle; a newly unresolved
non-weak import. Everything else that differs is a compatible change.

Every result is an immutable record (:mod:`.results`); nothing here is
quadratic in modules or symbols (matching is by dict, section order by a
longest increasing subsequence). One module per scope: :mod:`.module` (one
module's two builds), :mod:`.kabi` (exports and importers), :mod:`.trees`
(whole trees, dependencies, patterns), :mod:`.policy` (the kABI policy).
"""

from __future__ import annotations

from .kabi import diff_exports, diff_kabi, export_map, symvers_export_map, symvers_exports
from .module import DEFAULT_CONSUMERS, SECTION_FIELDS, diff_modinfo, diff_modules, diff_sections, diff_versions
from .results import EXIT_CHANGE, EXIT_ERROR, EXIT_INCOMPATIBLE, EXIT_SAME, EXIT_USAGE, Attribute, ConsumerChange, \
    DepChange, DependencyDiff, ExportChange, ExportGroup, ExporterSummary, ExportInfo, ExportsDiff, KabiDiff, \
    KabiEffect, \
    ModinfoChange, ModuleDiff, Pattern, SectionChange, SectionInfo, TreeDiff, TreeSide, VersionChange, ViewSummary, \
    exit_status
from .trees import DepFacts, diff_dependencies, diff_export_sides, diff_trees, patterns

__all__ = [
    "DEFAULT_CONSUMERS", "EXIT_CHANGE", "EXIT_ERROR", "EXIT_INCOMPATIBLE", "EXIT_SAME", "EXIT_USAGE", "SECTION_FIELDS",
    "Attribute", "ConsumerChange", "DepChange", "DepFacts", "DependencyDiff", "ExportChange", "ExportGroup",
    "ExportsDiff",
    "ExportInfo", "ExporterSummary", "KabiDiff", "KabiEffect", "ModinfoChange", "ModuleDiff", "Pattern",
    "SectionChange", "SectionInfo", "TreeDiff", "TreeSide", "VersionChange", "ViewSummary",
    "diff_dependencies", "diff_export_sides", "diff_exports", "diff_kabi", "diff_modinfo", "diff_modules",
    "diff_sections", "diff_trees", "diff_versions",
    "exit_status", "export_map", "patterns", "symvers_export_map", "symvers_exports",
]
