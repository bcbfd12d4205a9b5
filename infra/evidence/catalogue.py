"""The control catalogue: reviewed data (``policies/controls/catalogue.toml``) read and validated.

One validation path, deny by default: a key the schema does not name, a control without a source, a
framework the file does not declare, a duplicate id, or a check id of no known kind is refused with
a ``CatalogueError`` that names the control and the key. Rule ids must be in the rule registry
(``policies.rules.RULES``); checkov ids and test names are checked against checkov's registry and
the test files by the catalogue's tests.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.stackfile import ROOT
from policies.rules import RULES

CATALOGUE = ROOT / "policies" / "controls" / "catalogue.toml"
"""The reviewed catalogue file."""

RULE, CHECKOV, SCHEMA, TEST = "rule", "checkov", "schema", "test"
CHECK_KINDS = (RULE, CHECKOV, SCHEMA, TEST)
"""Kinds of evidence: our rules, checkov checks, the Kubernetes schema validation, tests."""

SCHEMA_CHECK = "K8S-SCHEMA"
"""The id under which the gate reports Kubernetes schema errors."""

_KIND_PATTERNS = (
    (RULE, re.compile(r"SOV-[A-Z0-9]+-\d{3}")),
    (CHECKOV, re.compile(r"CKV2?_[A-Z0-9]+_\d+")),
    (SCHEMA, re.compile(re.escape(SCHEMA_CHECK))),
)
_TEST_REF = re.compile(r"tests/[a-z0-9_/]+\.py::[a-z_][a-z0-9_]*")
_FRAMEWORK_KEYS = frozenset({"title", "source", "url"})
_CONTROL_KEYS = frozenset({"id", "framework", "title", "source", "url", "checks", "tests", "note"})
_REQUIRED = ("id", "framework", "title", "source", "note")


class CatalogueError(ValueError):
    """The catalogue file is unreadable or breaks its schema (a defect of reviewed data)."""


@dataclass(frozen=True)
class Framework:
    """A framework the catalogue maps: a law, a standard or a benchmark."""

    id: str
    """Short id used by controls (``UAE-PDPL``, ``ISO27001``, ``CIS-EKS``)."""
    title: str
    """Its full name and version."""
    source: str
    """The document it is, as a reader would look it up."""
    url: str
    """Where it can be read or bought."""


@dataclass(frozen=True)
class Control:
    """One control of a framework and the evidence that proves it on a stack."""

    id: str
    """Unique id (``PDPL-22``, ``ISO27001-A.8.24``, ``CIS-EKS-5.3.1``)."""
    framework: str
    """The id of its ``Framework``."""
    title: str
    """The control's title as its source words it (or a faithful summary)."""
    source: str
    """Document and section that state the control."""
    url: str
    """Where the source can be read; may be empty for a document that is not public."""
    checks: tuple[str, ...]
    """Check ids whose results on the record are the evidence (rules, checkov, schema)."""
    tests: tuple[str, ...]
    """Tests that back the control (``tests/<file>.py::<function>``); listed, not run."""
    note: str
    """The reviewer's note: what the mapping shows and what it does not."""


@dataclass(frozen=True)
class Catalogue:
    """The frameworks and their controls, in file order."""

    frameworks: tuple[Framework, ...]
    controls: tuple[Control, ...]

    def framework(self, framework_id: str) -> Framework:
        """The framework with ``framework_id`` (KeyError when the catalogue has none)."""
        for f in self.frameworks:
            if f.id == framework_id:
                return f
        raise KeyError(framework_id)

    def check_ids(self) -> set[str]:
        """Every check id any control names."""
        return {c for control in self.controls for c in control.checks}


def check_kind(check_id: str) -> str:
    """The kind of ``check_id`` (``rule``, ``checkov``, ``schema``, ``test``); CatalogueError
    for an id of no known form."""
    if _TEST_REF.fullmatch(check_id):
        return TEST
    for kind, pattern in _KIND_PATTERNS:
        if pattern.fullmatch(check_id):
            return kind
    raise CatalogueError(f"{check_id!r} is no known check id (SOV-*, CKV*_, {SCHEMA_CHECK})")


def known_rule_ids() -> frozenset[str]:
    """Rule ids of this build's rule set."""
    return frozenset(r.id for r in RULES)


def _text(where: str, table: Mapping[str, Any], key: str, required: bool = True) -> str:
    value = table.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise CatalogueError(f"{where}: {key} must be a non-empty string")
    return " ".join(value.split())


def _strings(where: str, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogueError(f"{where}: {key} must be a list of non-empty strings")
    if len(set(value)) != len(value):
        dup = sorted({v for v in value if value.count(v) > 1})
        raise CatalogueError(f"{where}: {key} names {', '.join(dup)} twice")
    return tuple(value)


def _unknown_keys(where: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(extra)}")


def _framework(fid: str, table: Any) -> Framework:
    where = f"framework {fid}"
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: must be a table")
    _unknown_keys(where, table, _FRAMEWORK_KEYS)
    return Framework(
        fid, _text(where, table, "title"), _text(where, table, "source"), _text(where, table, "url")
    )


def _control(index: int, table: Any, frameworks: set[str], rules: frozenset[str]) -> Control:
    where = f"control #{index + 1}"
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: must be a table")
    if isinstance(table.get("id"), str) and table["id"].strip():
        where = f"control {table['id']}"
    _unknown_keys(where, table, _CONTROL_KEYS)
    for key in _REQUIRED:
        _text(where, table, key)
    if table["framework"] not in frameworks:
        known = ", ".join(sorted(frameworks))
        raise CatalogueError(f"{where}: framework {table['framework']!r} is not declared ({known})")
    checks, tests = _strings(where, table, "checks"), _strings(where, table, "tests")
    if not checks and not tests:
        raise CatalogueError(f"{where}: names neither checks nor tests")
    for check in checks:
        kind = check_kind(check)
        if kind == TEST:
            raise CatalogueError(f"{where}: {check} is a test; list it under tests")
        if kind == RULE and check not in rules:
            raise CatalogueError(f"{where}: rule {check} is not in the rule set")
    for test in tests:
        if check_kind(test) != TEST:
            raise CatalogueError(f"{where}: {test!r} is not a test (tests/<file>.py::<function>)")
    return Control(
        id=_text(where, table, "id"),
        framework=table["framework"],
        title=_text(where, table, "title"),
        source=_text(where, table, "source"),
        url=_text(where, table, "url", required=False),
        checks=checks,
        tests=tests,
        note=_text(where, table, "note"),
    )


def parse_catalogue(doc: Mapping[str, Any], rules: frozenset[str] | None = None) -> Catalogue:
    """A validated ``Catalogue`` from the parsed TOML ``doc``; CatalogueError on any defect.

    ``rules`` are the rule ids that exist (this build's rule set by default).
    """
    rules = known_rule_ids() if rules is None else rules
    _unknown_keys("catalogue", doc, {"frameworks", "controls"})
    raw_frameworks, raw_controls = doc.get("frameworks"), doc.get("controls")
    if not isinstance(raw_frameworks, dict) or not raw_frameworks:
        raise CatalogueError("catalogue: no [frameworks.<id>] table")
    if not isinstance(raw_controls, list) or not raw_controls:
        raise CatalogueError("catalogue: no [[controls]]")
    frameworks = tuple(_framework(fid, t) for fid, t in raw_frameworks.items())
    known = {f.id for f in frameworks}
    controls = tuple(_control(i, t, known, rules) for i, t in enumerate(raw_controls))
    seen: set[str] = set()
    for c in controls:
        if c.id in seen:
            raise CatalogueError(f"control {c.id}: the id is used twice")
        seen.add(c.id)
    unused = sorted(known - {c.framework for c in controls})
    if unused:
        raise CatalogueError(f"framework(s) {', '.join(unused)} have no control")
    return Catalogue(frameworks, controls)


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    """The reviewed catalogue at ``path``, validated; CatalogueError when it cannot be used."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_catalogue(doc)
    except CatalogueError as exc:
        raise CatalogueError(f"{path}: {exc}") from None
