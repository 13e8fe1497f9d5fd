"""``--format junit``: the CI cases (:mod:`.ci`) as JUnit XML, the form Jenkins and GitLab read.

``<testsuites>`` holds one ``<testsuite>`` per kind of case (report: modules,
policy; diff: kabi, modules, dependencies), each ``<testcase>`` a module or a
change, with a ``<failure>`` (type: the rule, message: why, text: every reason,
the file and the details) when it counts towards the exit status; what the
policy does not gate on goes to the case's ``<system-out>``. Valid against
Jenkins' junit-10.xsd (tests/data/ci-schemas): that schema has no ``file``
attribute on a test case, so the file is named in the failure's text and the
test case's name. Every string is made XML 1.0 text by :func:`.ci.clean`:
a control character cannot be written in XML even as a character reference.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .ci import Case, Cases, clean

def render(cases: Cases) -> str:
    roots = {r.id: r for r in cases.roots}
    suites: dict[str, list[Case]] = {}
    for c in cases.cases:
        suites.setdefault(c.suite, []).append(c)
    failures = sum(1 for c in cases.cases if c.failing)
    top = ET.Element("testsuites", _attrs(name=cases.title, tests=len(cases.cases), failures=failures, errors=0))
    for name in suites:  # in the cases' order
        members = suites[name]
        suite = ET.SubElement(top, "testsuite", _attrs(
            name=f"{cases.title}: {name}", tests=len(members), failures=sum(1 for c in members if c.failing),
            errors=0, skipped=0))
        props = ET.SubElement(suite, "properties")
        for k, v in (*cases.properties, ("exit_code", str(cases.exit_code))):
            ET.SubElement(props, "property", _attrs(name=k, value=v))
        for c in members:
            suite.append(_testcase(c, roots))
    ET.indent(top, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode") + "\n"


def _testcase(c: Case, roots) -> ET.Element:
    case = ET.Element("testcase", _attrs(name=c.name, classname=c.classname))
    root = roots.get(c.base)
    if c.path is not None:
        file_line = f"file: {c.path}" + (f" (in {root.label})" if root is not None and not c.path.startswith("/")
                                         else "")
    else:  # a policy term, a module the report names without a path
        file_line = f"tree: {root.label}" if root is not None else ""
    failing = c.failing
    if failing:
        message = failing[0].message + (f" (and {len(failing) - 1} more)" if len(failing) > 1 else "")
        text = [f"{f.rule}: {f.message}" for f in failing] + [file_line] + ([c.details] if c.details else [])
        failure = ET.SubElement(case, "failure", _attrs(type=failing[0].rule, message=message))
        failure.text = clean("\n".join(text), newlines=True)
    advice = [f for f in c.findings if not f.gating]
    if advice or (not failing and c.details):
        out = ET.SubElement(case, "system-out")
        out.text = clean("\n".join([f"{f.rule} (not gated): {f.message}" for f in advice]
                                   + ([c.details] if c.details and not failing else []) + [file_line]), newlines=True)
    return case


def _attrs(**kw: object) -> dict[str, str]:
    return {k: clean(str(v)) for k, v in kw.items()}
