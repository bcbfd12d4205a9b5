"""Mutations that would let traffic leave the zone through the mesh (SOV-ZT-005).

Each declares Istio objects the way a careless or hostile change would, beside the egress
component's own: a wider host, another region, a public registry, a passthrough resolution,
an address range, a Sidecar re-opening ALLOW_ANY.
"""

from __future__ import annotations

from tests.mutations import Mutation


def _entry(name: str, spec: str) -> str:
    return f"""
        k8s.apiextensions.CustomResource("{name}", api_version="networking.istio.io/v1",
            kind="ServiceEntry", metadata={{"name": "{name}", "namespace": "serving"}},
            spec={{"location": "MESH_EXTERNAL", "ports": [{{"number": 443, "name": "tls",
                   "protocol": "TLS"}}], {spec}}})
        """


ZERO_TRUST: list[Mutation] = [
    Mutation(
        "a ServiceEntry for every AWS host",
        "SOV-ZT-005",
        _entry("m-aws", '"hosts": ["*.amazonaws.com"], "resolution": "NONE"'),
    ),
    Mutation(
        "a ServiceEntry for another region's S3",
        "SOV-ZT-005",
        _entry("m-s3", '"hosts": ["s3.eu-west-1.amazonaws.com"], "resolution": "DNS"'),
    ),
    Mutation(
        "a ServiceEntry for a public registry",
        "SOV-ZT-005",
        _entry("m-hub", '"hosts": ["registry-1.docker.io"], "resolution": "DNS"'),
    ),
    Mutation(
        "an allowed name carried to any address by 0.0.0.0/0",
        "SOV-ZT-005",
        _entry(
            "m-any",
            '"hosts": ["kms.me-central-1.amazonaws.com"], "resolution": "NONE", '
            '"addresses": ["0.0.0.0/0"]',
        ),
    ),
    Mutation(
        "a Sidecar re-opening ALLOW_ANY for a namespace",
        "SOV-ZT-005",
        """
        k8s.apiextensions.CustomResource("m-sidecar", api_version="networking.istio.io/v1",
            kind="Sidecar", metadata={"name": "default", "namespace": "serving"},
            spec={"outboundTrafficPolicy": {"mode": "ALLOW_ANY"}})
        """,
    ),
]
"""Egress leaving the zone through the mesh (SOV-ZT-005)."""
