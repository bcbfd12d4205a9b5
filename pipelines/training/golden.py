"""The golden form of the compiled IR (``pipelines/training/compiled/``): where the files are,
their header, and the normalisation that keeps them stable between compiles.

Written by :func:`pipelines.training.compilation.write_golden`; compared by the tests.
"""

import re
from pathlib import Path
from typing import Any

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
GOLDEN = {
    "local": COMPILED_DIR / "training.yaml",
    "cluster": COMPILED_DIR / "training-cluster.yaml",
}
"""The golden file of each target."""

EMBEDDED_ARCHIVE = re.compile(r"__KFP_EMBEDDED_ARCHIVE_B64 = '[A-Za-z0-9+/=]*'")
EMBEDDED_PLACEHOLDER = (
    "__KFP_EMBEDDED_ARCHIVE_B64 = '<embedded pipelines/training: see golden header>'"
)
VOLATILE_KEYS = ("sdkVersion",)
GOLDEN_HEADER = """\
# Golden compiled IR of pipelines/training/pipeline.py ({target} target), normalised for review:
# sdkVersion dropped and each embedded code archive (a gzip with a timestamp, so different on
# every compile) replaced by a placeholder; tests check the real archive holds pipelines/training.
# Regenerate: .venv/bin/python -m pipelines.training.pipeline --write-golden
# Deployable IR: sovml pipeline compile training --target {target}
"""


def normalise_ir(text: str) -> list[Any]:
    """Parsed IR documents without volatile fields (see :data:`GOLDEN_HEADER`)."""
    import yaml

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k not in VOLATILE_KEYS}
        if isinstance(node, list):
            return [clean(v) for v in node]
        if isinstance(node, str):
            return EMBEDDED_ARCHIVE.sub(EMBEDDED_PLACEHOLDER, node)
        return node

    return [clean(doc) for doc in yaml.safe_load_all(text) if doc is not None]


def golden_text(text: str, target: str) -> str:
    """The golden-file form of compiled IR ``text``."""
    import yaml

    body = yaml.safe_dump_all(normalise_ir(text), sort_keys=False, width=100)
    return GOLDEN_HEADER.format(target=target) + body
