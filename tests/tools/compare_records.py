"""Compare two synth records by what a deployment would create: type, name, inputs and options.

Used to show that a restructuring left every stack's resources unchanged::

    python -m tests.tools.compare_records OLD_BUILD_DIR NEW_BUILD_DIR [STACK ...]

Every resource must match by (type, name) with equal inputs and options, except this project's
own ComponentResources (type ``sovereign-ml:...``: they only group children and declare nothing in
the cloud), which are listed separately as notes. Provider-side components (a kustomize Directory,
a ConfigGroup) are compared like custom resources: their inputs decide what is deployed.

URNs, parents and dependency URNs are left out on purpose (moving a resource into another
component changes them; its alias keeps the deployed resource). Exits 1 when a compared resource
or the validated config differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def resources_by_key(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each resource keyed by (type, name), with the fields a deployment depends on."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in record["resources"]:
        key = (r["type"], r["name"])
        if key in out:
            raise ValueError(f"duplicate resource {key}")
        out[key] = {
            "inputs": r["inputs"],
            "protect": r.get("protect"),
            "retainOnDelete": r.get("retainOnDelete"),
            "ignoreChanges": sorted(r.get("ignoreChanges", [])),
            "custom": r.get("custom"),
        }
    return out


def leaf_differences(a: Any, b: Any, path: str = "") -> list[str]:
    """``path: old -> new`` for every leaf that differs between two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += leaf_differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in leaf_differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}"]


def _own_component(resource: dict[str, Any]) -> bool:
    return resource["type"].startswith("sovereign-ml:")


def component_notes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Components added or removed (structure only: they declare nothing in the cloud)."""
    a = {(r["type"], r["name"]) for r in old["resources"] if _own_component(r)}
    b = {(r["type"], r["name"]) for r in new["resources"] if _own_component(r)}
    return [f"component only in old: {k}" for k in sorted(a - b)] + [
        f"component only in new: {k}" for k in sorted(b - a)
    ]


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Differences in what two records create (empty when they create the same)."""
    keep = [
        {**rec, "resources": [r for r in rec["resources"] if not _own_component(r)]}
        for rec in (old, new)
    ]
    a, b = resources_by_key(keep[0]), resources_by_key(keep[1])
    problems = [f"only in old: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in new: {k}" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        for field in a[k]:
            for diff in leaf_differences(a[k][field], b[k][field], field):
                problems.append(f"{k[0]} {k[1]}: {diff}")
    if old.get("config") != new.get("config"):
        problems.append("config differs")
    return problems


def main(argv: list[str]) -> int:
    """CLI entry: compare build dirs stack by stack."""
    if len(argv) < 2:
        print(__doc__)
        return 2
    old_dir, new_dir = Path(argv[0]), Path(argv[1])
    stacks = argv[2:] or sorted(
        p.name for p in old_dir.iterdir() if (p / "resources.json").is_file()
    )
    status = 0
    for stack in stacks:
        old = json.loads((old_dir / stack / "resources.json").read_text())
        new = json.loads((new_dir / stack / "resources.json").read_text())
        problems = compare(old, new)
        for note in component_notes(old, new):
            print(f"  note: {note}")
        print(
            f"{stack}: {len(old['resources'])} vs {len(new['resources'])} resources, "
            f"{'identical' if not problems else f'{len(problems)} differences'}"
        )
        for p in problems[:50]:
            print(f"  {p}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
