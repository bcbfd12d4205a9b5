"""The CI workflow example that builds, pushes and signs the pipeline images (issue 26).

Parsed, not run: it must name only inventory images that have a Dockerfile, sign by digest with
the stack's KMS key without a public transparency log, authenticate through OIDC (no long-lived
keys), and pin every action to a commit SHA or, where none could be sourced, a major tag.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies import inventory

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"
PINNED = re.compile(r"[\w.-]+/[\w.-]+@(?:[0-9a-f]{40}|v\d+)")
"""``owner/action@<40-hex commit SHA>`` or ``@v<major>``."""


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_the_workflow_builds_only_inventory_images_with_a_dockerfile(workflow: dict) -> None:
    assert set(workflow["jobs"]) == {"build-sign-push", "chart-images"}
    job = workflow["jobs"]["build-sign-push"]
    images = job["strategy"]["matrix"]["image"]
    assert images == ["feature-steps", "katib-trial", "model-puller"]
    for ident in images:
        assert inventory.entry(ident, "image").mirror.startswith("sovereign-ml/")
        assert (ROOT / "pipelines" / "images" / ident / "Dockerfile").is_file(), ident


def test_every_action_is_pinned_and_no_long_lived_key_is_used(workflow: dict) -> None:
    uses = [s["uses"] for s in _steps(workflow) if "uses" in s]
    assert len(uses) == 6 and all(PINNED.fullmatch(u) for u in uses), uses
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    text = WORKFLOW.read_text()
    assert "aws-access-key-id" not in text and "secrets." not in text


def test_images_are_signed_by_digest_with_the_stacks_kms_key_and_no_public_log(
    workflow: dict,
) -> None:
    runs = [s["run"] for s in _steps(workflow) if "run" in s]
    (sign,) = [r for r in runs if "cosign sign" in r]
    assert '--key "awskms:///alias/sovml-${STACK}-image-signing"' in sign
    assert "--tlog-upload=false" in sign
    assert re.search(r"@\$\{\{ steps\.push\.outputs\.digest \}\}", sign), sign
    (build,) = [r for r in runs if "docker build" in r]
    # The Dockerfiles copy from the repository root, so that is the build context.
    assert build.split("docker build", 1)[1].split("\n", 1)[0].rstrip().endswith(" .")
    assert any("cosign verify" in r for r in runs)


def test_every_chart_is_rendered_with_our_values_and_its_images_judged(workflow: dict) -> None:
    """The job renders each release the program declares (the index ``sovml images values``
    writes) and fails on any image that is not an inventory image in the zone's registry."""
    from typer.main import get_command

    from infra.cli.images import images_app

    runs = [s["run"] for s in workflow["jobs"]["chart-images"]["steps"] if "run" in s]
    text = "\n".join(runs)
    assert 'sovml images values "$STACK" --out build/charts' in text
    assert "build/charts/releases.tsv" in text and "--skip-crds" in text
    assert '-f "build/charts/$values"' in text and '--version "$version"' in text
    assert runs[-1] == '.venv/bin/sovml images verify-rendered "$STACK" build/rendered/*.yaml'
    commands = set(get_command(images_app).commands)  # type: ignore[attr-defined]
    assert {"values", "verify-rendered"} <= commands
    read = "while IFS=$'\\t' read -r release namespace chart version repository values"
    assert read in text
    from infra.images.rendered import INDEX_COLUMNS

    assert INDEX_COLUMNS == ("release", "namespace", "chart", "version", "repository", "values")
