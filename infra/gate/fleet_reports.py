"""The fleet report (one per ``sovml check`` run or shard), shard assignment, and merging shards.

``build/fleet/report.json`` lists every stack the run was given, each with its status
(``checked``, ``skipped``, ``error``), verdict and its own ``report.json`` content, so shard
reports merge from these files alone. Beside it ``report.junit.xml`` (one ``testsuite`` per
stack inside one ``testsuites``) and ``report.sarif`` (one SARIF run: GitHub code scanning takes
one run per tool and category; locations are prefixed ``build/<stack>/`` so they stay apart).

Shards: ``shard_of`` assigns a stack by a stable hash of its name, so adding a tenant never moves
the others to another shard (their CI caches stay warm); ``merge`` refuses shard reports that
overlap, repeat a stack, disagree on N or on the gate's inputs, or leave a shard out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from infra.gate.reports import sarif_document

KIND = "sovml-fleet-report"
VERSION = 1
FILES = ("report.json", "report.junit.xml", "report.sarif")
"""The fleet report's files, in ``build/fleet/`` (or a merge's ``--out``)."""
MAX_SHARDS = 1000
"""More shards than this is a typo, not a fleet."""
MAX_REPORT_BYTES = 256 << 20
"""A shard report larger than this is refused rather than read."""
_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")


class FleetReportError(ValueError):
    """A shard specification or a shard report that cannot be used (bad input: exit 2)."""


# --- shards -----------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``; K in 1..N, N in 1..``MAX_SHARDS``. Raises FleetReportError."""
    match = _SHARD.fullmatch(text.strip())
    if not match:
        raise FleetReportError(f"--shard {text!r}: expected K/N, e.g. 1/4")
    k, n = int(match[1]), int(match[2])
    if not 1 <= n <= MAX_SHARDS:
        raise FleetReportError(f"--shard {text}: N must be 1 to {MAX_SHARDS}")
    if not 1 <= k <= n:
        raise FleetReportError(f"--shard {text}: K must be 1 to {n}")
    return k, n


def shard_of(stack: str, n: int) -> int:
    """The shard (1..n) that checks ``stack``: a stable hash of the name, never of the order."""
    return int(hashlib.sha256(stack.encode()).hexdigest()[:16], 16) % n + 1


def select_shard(stacks: Sequence[str], k: int, n: int) -> list[str]:
    """The stacks of shard ``k`` of ``n``, in their given order."""
    return [s for s in stacks if shard_of(s, n) == k]


# --- the fleet report ---------------------------------------------------------------------------


def fleet_doc(
    stacks: list[dict[str, Any]],
    *,
    gate_inputs: str,
    shard: tuple[int, int] | None,
    seconds: dict[str, float],
    shards: list[int] | None = None,
) -> dict[str, Any]:
    """The fleet report: every stack's entry (``infra.gate.fleet.stack_doc``) and the totals."""
    counts = {
        s: sum(1 for e in stacks if e["status"] == s) for s in ("checked", "skipped", "error")
    }
    return {
        "kind": KIND,
        "version": VERSION,
        "ok": all(e["ok"] for e in stacks),
        "gateInputs": gate_inputs,
        "shard": list(shard) if shard else None,
        "shards": shards,
        "counts": {**counts, "stacks": len(stacks), "failed": sum(not e["ok"] for e in stacks)},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "stacks": stacks,
    }


def junit(doc: dict[str, Any]) -> str:
    """JUnit XML: one ``testsuite`` per stack (as its own report has it) in one ``testsuites``."""
    suites = ET.Element("testsuites", name="sovml-check-fleet")
    for entry in doc["stacks"]:
        name, report = entry["stack"], entry["report"]
        findings = report["findings"] if report else []
        failures = [f for f in findings if f["status"] == "failed"]
        suite = ET.SubElement(
            suites, "testsuite", name=f"sovml-check-{name}", tests=str(len(findings) + 1),
            failures=str(len(failures)), skipped=str(len(findings) - len(failures)),
            errors=str(0 if entry["status"] != "error" and not (report or {}).get("errors") else 1),
            time=f"{(report or {}).get('seconds', 0):.2f}",
        )  # fmt: skip
        case = ET.SubElement(suite, "testcase", classname=f"{name}.gate", name="gate-ran")
        errors = [entry["reason"]] if entry["status"] == "error" else (report or {}).get("errors")
        if errors:
            ET.SubElement(case, "error", message=errors[0]).text = "\n".join(errors)
        for f in findings:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{name}.{f['source']}",
                name=f"{f['id']} {f['resource']}",
            )
            if f["status"] == "failed":
                ET.SubElement(case, "failure", message=f["message"]).text = f["message"]
            else:
                ET.SubElement(case, "skipped", message=f"suppressed: {f['justification']}")
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def sarif(doc: dict[str, Any]) -> dict[str, Any]:
    """SARIF 2.1.0, one run for the whole fleet; each location names its stack's build folder."""
    results = []
    for entry in doc["stacks"]:
        name = entry["stack"]
        for f in (entry["report"] or {}).get("findings", []):
            uri = f"build/{name}/{f['file']}" if f["file"] else f"build/{name}/resources.json"
            result: dict[str, Any] = {
                "ruleId": f["id"],
                "level": "error",
                "message": {"text": f"{name}: {f['resource']}: {f['message']}"},
                "locations": [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": uri}},
                        "logicalLocations": [{"fullyQualifiedName": f"{name}/{f['resource']}"}],
                    }
                ],
            }
            if f["status"] == "suppressed":
                result["suppressions"] = [{"kind": "external", "justification": f["justification"]}]
            results.append(result)
    return sarif_document(results)


def write_fleet(doc: dict[str, Any], out: Path) -> list[Path]:
    """The fleet report's three files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FILES]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    paths[1].write_text(junit(doc))
    paths[2].write_text(json.dumps(sarif(doc), indent=2) + "\n")
    return paths


# --- merging shards ---------------------------------------------------------------------------


def read_shard(path: Path) -> dict[str, Any]:
    """A shard's fleet report from a folder (``DIR/report.json``) or the file itself."""
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise FleetReportError(f"{path}: no fleet report (report.json) there")
    if file.stat().st_size > MAX_REPORT_BYTES:
        raise FleetReportError(f"{file}: over {MAX_REPORT_BYTES >> 20} MiB, not a fleet report")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FleetReportError(f"{file}: not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("version") != VERSION:
        raise FleetReportError(f"{file}: not a {KIND} version {VERSION}")
    shard = doc.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(x) is int for x in shard)):
        raise FleetReportError(f"{file}: not a shard's report (run `sovml check --shard K/N`)")
    stacks = doc.get("stacks")
    if not isinstance(stacks, list) or not all(
        isinstance(e, dict) and isinstance(e.get("stack"), str) and isinstance(e.get("ok"), bool)
        and e.get("status") in ("checked", "skipped", "error")
        and (e.get("report") is None or isinstance(e.get("report"), dict))
        for e in stacks
    ):  # fmt: skip
        raise FleetReportError(f"{file}: malformed stack entries")
    doc["_file"] = str(file)
    return doc


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One fleet report from every shard's; raises FleetReportError on any overlap or gap."""
    if not docs:
        raise FleetReportError("no shard reports given")
    n = docs[0]["shard"][1]
    seen_shards: dict[int, str] = {}
    seen_stacks: dict[str, str] = {}
    for doc in docs:
        k, doc_n = doc["shard"]
        where = doc["_file"]
        if doc_n != n or not 1 <= k <= n:
            raise FleetReportError(
                f"{where}: shard {k}/{doc_n} does not belong to a split into {n}"
            )
        if k in seen_shards:
            raise FleetReportError(f"{where}: shard {k}/{n} again (also {seen_shards[k]})")
        seen_shards[k] = where
        if doc["gateInputs"] != docs[0]["gateInputs"]:
            raise FleetReportError(
                f"{where}: judged with other gate inputs than {docs[0]['_file']}"
            )
        for entry in doc["stacks"]:
            name = entry["stack"]
            if name in seen_stacks:
                raise FleetReportError(f"{where}: stack {name} is also in {seen_stacks[name]}")
            if shard_of(name, n) != k:
                raise FleetReportError(
                    f"{where}: stack {name} belongs to shard {shard_of(name, n)}/{n}"
                )
            seen_stacks[name] = where
    missing = sorted(set(range(1, n + 1)) - set(seen_shards))
    if missing:
        raise FleetReportError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing")
    stacks = sorted((e for d in docs for e in d["stacks"]), key=lambda e: e["stack"])
    seconds = {"total": max(float(d.get("seconds", {}).get("total", 0)) for d in docs)}
    return fleet_doc(
        stacks, gate_inputs=docs[0]["gateInputs"], shard=None, seconds=seconds,
        shards=sorted(seen_shards),
    )  # fmt: skip
