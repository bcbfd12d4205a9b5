"""sovereign-ml CrossGuard pack: ``pulumi preview --policy-pack policies``.

The rules live in ``policies/rules`` as pure functions shared with the offline gate
(``sovml check``); this file only hands them to CrossGuard.
"""

import sys
from pathlib import Path

# The analyzer runs this folder as a script; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.crossguard import policies

PolicyPack(
    name="sovereign-ml",
    description="Residency, encryption, network, IAM, GPU isolation, Kubernetes and tagging rules.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
