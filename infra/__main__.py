"""sovereign-ml: the Pulumi program. Load the typed stack config, build the platform, export."""

import sys
from pathlib import Path

# `pulumi up` runs this folder as a script; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.config.stackfile import program_config
from infra.platform import build

# `sovml synth` hands over the config it has validated; `pulumi up` reads it from the engine.
config = program_config(globals())

for name, value in build(config).items():
    pulumi.export(name, value)
