"""sovereign-ml: the Pulumi program. Load the typed stack config, build the platform, export."""

import sys
from pathlib import Path

# `pulumi up` runs this folder as a script; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.config import ConfigError, from_pulumi
from infra.platform import build

stack = pulumi.get_stack()
project, aws_config = pulumi.Config(), pulumi.Config("aws")
try:
    config = from_pulumi(
        lambda key: aws_config.get(key[4:]) if key.startswith("aws:") else project.get(key),
        stack=stack,
        source=f"stacks/Pulumi.{stack}.yaml",
    )
except ConfigError as exc:
    # RunError: the CLI prints the message without a Python traceback.
    raise pulumi.RunError(str(exc)) from None

for name, value in build(config).items():
    pulumi.export(name, value)
