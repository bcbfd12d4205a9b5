"""Compile the training pipeline to KFP IR YAML: a deployable file, or the golden files.

Command line (``pipelines/training/pipeline.py`` runs :func:`main` as its ``__main__``)::

    .venv/bin/python -m pipelines.training.pipeline [--target local|cluster] [--out PATH]
    .venv/bin/python -m pipelines.training.pipeline --write-golden
"""

import argparse
import tempfile
from pathlib import Path

from kfp import compiler

from pipelines.training import golden
from pipelines.training import pipeline as training
from pipelines.training.packaging import TARGETS
from pipelines.training.provenance import CODE_ROOT


def compile_pipeline(
    target: str = "local",
    out: str | Path | None = None,
    image_registry: str | None = None,
    pip_index_url: str | None = None,
) -> Path:
    """Compile the pipeline for ``target`` to IR YAML and return the file's path.

    Args:
        target: ``local`` or ``cluster``.
        out: Destination; default ``build/pipelines/training[-cluster].yaml``.
        image_registry: In-region registry mirror for the images (cluster).
        pip_index_url: In-region package index for the cluster pods.
    """
    pipeline = training.build_pipeline(target, image_registry, pip_index_url)
    suffix = "" if target == "local" else f"-{target}"
    path = Path(out) if out else CODE_ROOT / "build" / "pipelines" / f"training{suffix}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        pipeline,
        str(path),
        pipeline_parameters=training.CLUSTER_DEFAULTS if target == "cluster" else None,
    )
    return path


def write_golden() -> list[Path]:
    """Rewrite ``pipelines/training/compiled/*.yaml`` from the current code.

    See :func:`pipelines.training.golden.golden_text` for what the golden form leaves out.
    """
    written = []
    for target, path in golden.GOLDEN.items():
        with tempfile.TemporaryDirectory() as tmp:
            raw = compile_pipeline(target, Path(tmp) / "ir.yaml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(golden.golden_text(raw.read_text(), target))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """The command line: ``[--target local|cluster] [--out PATH] [--write-golden]``."""
    parser = argparse.ArgumentParser(description=(training.__doc__ or "").splitlines()[0])
    parser.add_argument("--target", choices=TARGETS, default="local")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--write-golden", action="store_true", help="rewrite pipelines/training/compiled/"
    )
    args = parser.parse_args(argv)
    if args.write_golden:
        for path in write_golden():
            print(f"wrote {path.relative_to(CODE_ROOT)}")
        return 0
    print(f"wrote {compile_pipeline(args.target, args.out)}")
    return 0
