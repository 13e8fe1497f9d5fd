"""``--format sarif``: the CI cases (:mod:`.ci`) as a SARIF 2.1.0 log, the form GitHub code scanning takes.

One run; one rule (``reportingDescriptor``) per kind of finding, its id stable
and spelled as the user writes it: a --fail-on term (``lost:kmod34``,
``refuses:kernel-6.13``, ``findings:CODE``) for a report, the change kind for a
diff (``kabi:removed``, ``module:breaks``, ``dependencies:cycle``). One result
per finding: level ``error`` when it counts towards the exit status, ``warning``
when the report shows it but the policy does not gate on it (or a kABI change
that breaks nothing); each at the module file, a URI relative to the tree's
module directory (``uriBaseId`` TREE, or OLD/NEW for a diff), since code
scanning rejects a result without a file: a finding of the tree as a whole is
placed at its ``modules.dep``. The exit status is the invocation's
``exitCode``. Valid against the OASIS schema (tests/data/ci-schemas).
"""

from __future__ import annotations

import hashlib
import json

from .. import __version__
from .ci import TREE_FILE, Case, Cases, clean, uri

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def render(cases: Cases) -> str:
    rule_ids = list(cases.rules)
    index = {r: i for i, r in enumerate(rule_ids)}
    rules = [{"id": r, "shortDescription": {"text": clean(cases.rules[r])},
              "defaultConfiguration": {"level": "error" if r in cases.gating_rules else "warning"},
              "properties": {"tags": [cases.tool, r.partition(":")[0]]}} for r in rule_ids]
    results = []
    for c in cases.cases:
        for f in () if c.covered else c.findings:
            if f.rule not in index:  # a rule the cases do not describe cannot be referenced
                index[f.rule] = len(rules)
                rules.append({"id": f.rule, "shortDescription": {"text": clean(f.rule)}})
            results.append({
                "ruleId": f.rule, "ruleIndex": index[f.rule], "level": "error" if f.gating else "warning",
                "message": {"text": clean(f.message, newlines=True)},
                "locations": [{"physicalLocation": {"artifactLocation": _location(c)}}],
                "partialFingerprints": {"kmodcompatFinding/v1": _fingerprint(c, f.rule)},
            })
    bases = {}
    for r in cases.roots:
        base: dict = {"description": {"text": clean(r.label)}}
        if r.path.startswith("/"):
            base["uri"] = uri(r.path.rstrip("/") + "/")
        bases[r.id] = base
    run = {
        "tool": {"driver": {"name": "kmodcompat", "version": __version__, "rules": rules}},
        "automationDetails": {"id": f"kmodcompat/{cases.tool}/"},
        "originalUriBaseIds": bases,
        "invocations": [{"executionSuccessful": True, "exitCode": cases.exit_code,
                         "properties": {k: clean(v) for k, v in cases.properties}}],
        "results": results,
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=1) + "\n"


def _location(c: Case) -> dict:
    path = c.path if c.path is not None else TREE_FILE
    if path.startswith("/"):  # the kernel's Module.symvers or boot image, outside the module directory
        return {"uri": uri(path)}
    return {"uri": uri(path), "uriBaseId": c.base}


def _fingerprint(c: Case, rule: str) -> str:
    """Stable across runs for the same finding on the same subject (a module path, an export name)."""
    key = "\0".join((rule, c.suite, c.name, c.path or ""))
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
