# ruff: noqa: E501  (the case table reads best one case per line)
"""SOV-ZT-005 pass and fail fixtures (mesh egress in the zone), joined to ``tests/policy_cases``.

Kept apart so the zero-trust helpers' case tables merge without touching each other's lines.
"""

from __future__ import annotations

from typing import Any

from policies.rules import Resource
from tests.policy_fixtures import R

RELEASE = "kubernetes:helm.sh/v3:Release"
SE = "kubernetes:networking.istio.io/v1:ServiceEntry"
ZONE_ECR = "111122223333.dkr.ecr.me-central-1.amazonaws.com"


def istiod(mode: str | None = "REGISTRY_ONLY", chart: str = "istiod") -> Resource:
    """istiod's release with ``meshConfig.outboundTrafficPolicy.mode`` (None: not set)."""
    mesh: dict[str, Any] = {"outboundTrafficPolicy": {"mode": mode}} if mode else {}
    return R(
        RELEASE,
        "istiod",
        {
            "chart": chart,
            "version": "1.28.10",
            "namespace": "istio-system",
            "values": {"meshConfig": mesh},
        },
    )


def namespace(name: str = "serving") -> Resource:
    """A platform namespace (a stack on a cluster)."""
    return R("kubernetes:core/v1:Namespace", f"ns-{name}", {"metadata": {"name": name}})


def entry(*hosts: str, typ: str = SE, **spec: Any) -> Resource:
    """A ServiceEntry shaped like components/mesh_egress.py's, with ``spec`` overrides."""
    base = {
        "hosts": list(hosts),
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
        "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}],
    }
    return R(
        typ,
        "se-" + "-".join(hosts),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "se", "namespace": "istio-egress"},
            "spec": {**base, **spec},
        },
    )


def sidecar(mode: str) -> Resource:
    """A namespace's Sidecar with an outbound traffic policy."""
    return R(
        "kubernetes:networking.istio.io/v1:Sidecar",
        "sidecar",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "default", "namespace": "serving"},
            "spec": {"outboundTrafficPolicy": {"mode": mode}},
        },
    )


MESH = [istiod(), namespace()]
EGRESS_CASES: list[tuple[str, str, list[Resource], int]] = [
    ("SOV-ZT-005", "REGISTRY_ONLY mesh, VPC endpoint hosts", [*MESH, entry("kms.me-central-1.amazonaws.com", "sts.me-central-1.amazonaws.com", "api.ecr.me-central-1.amazonaws.com")], 0),
    ("SOV-ZT-005", "zone registry and a bucket on the zone's S3 endpoint", [*MESH, entry(ZONE_ECR), entry("sovml-prod-artifacts-123456789012.s3.me-central-1.amazonaws.com")], 0),
    ("SOV-ZT-005", "mirrored istiod chart, REGISTRY_ONLY; cluster-internal MESH_INTERNAL entry", [istiod(chart=f"oci://{ZONE_ECR}/charts/istiod"), namespace(), entry("vault.vault.svc.cluster.local", location="MESH_INTERNAL", resolution="NONE", ports=[{"number": 8200, "name": "http", "protocol": "HTTP"}])], 0),
    ("SOV-ZT-005", "no cluster at all: nothing to judge", [], 0),
    ("SOV-ZT-005", "namespaces and no mesh at all: SOV-ZT-001's to refuse", [namespace()], 0),
    ("SOV-ZT-005", "egress objects but no istiod to refuse the rest", [namespace(), entry("kms.me-central-1.amazonaws.com")], 1),
    ("SOV-ZT-005", "istiod with ALLOW_ANY", [istiod("ALLOW_ANY"), namespace()], 1),
    ("SOV-ZT-005", "istiod without an outbound policy (Istio's default ALLOW_ANY)", [istiod(None), namespace()], 1),
    ("SOV-ZT-005", "a Sidecar re-opening ALLOW_ANY for a namespace", [*MESH, sidecar("ALLOW_ANY")], 1),
    ("SOV-ZT-005", "ServiceEntry *.amazonaws.com", [*MESH, entry("*.amazonaws.com")], 1),
    ("SOV-ZT-005", "another region's S3", [*MESH, entry("s3.eu-west-1.amazonaws.com")], 1),
    ("SOV-ZT-005", "another region's registry", [*MESH, entry("111122223333.dkr.ecr.us-east-1.amazonaws.com")], 1),
    ("SOV-ZT-005", "a public registry", [*MESH, entry("registry-1.docker.io")], 1),
    ("SOV-ZT-005", "an in-zone name as a prefix of another domain", [*MESH, entry("kms.me-central-1.amazonaws.com.attacker.example")], 1),
    ("SOV-ZT-005", "dotted bucket label on the zone's S3 endpoint", [*MESH, entry("a.b.s3.me-central-1.amazonaws.com")], 1),
    ("SOV-ZT-005", "resolution NONE with an in-zone wildcard", [*MESH, entry("*.me-central-1.amazonaws.com", resolution="NONE")], 2),
    ("SOV-ZT-005", "MESH_EXTERNAL with addresses 0.0.0.0/0", [*MESH, entry("kms.me-central-1.amazonaws.com", addresses=["0.0.0.0/0"])], 1),
    ("SOV-ZT-005", "STATIC endpoints behind an allowed name", [*MESH, entry("kms.me-central-1.amazonaws.com", resolution="STATIC", endpoints=[{"address": "203.0.113.10"}])], 2),
    ("SOV-ZT-005", "plaintext HTTP port to an allowed host", [*MESH, entry("kms.me-central-1.amazonaws.com", ports=[{"number": 80, "name": "http", "protocol": "HTTP"}])], 1),
    ("SOV-ZT-005", "MESH_INTERNAL naming an external host", [*MESH, entry("example.com", location="MESH_INTERNAL")], 1),
    ("SOV-ZT-005", "MESH_INTERNAL cluster name with an endpoint outside", [*MESH, entry("x.vault.svc.cluster.local", location="MESH_INTERNAL", endpoints=[{"address": "203.0.113.10"}])], 2),
    ("SOV-ZT-005", "MESH_INTERNAL alias of a public name onto cluster Services", [*MESH, entry("sso.example.ae", location="MESH_INTERNAL", endpoints=[{"address": "inference-gateway.istio-ingress.svc.cluster.local"}])], 0),
    ("SOV-ZT-005", "MESH_INTERNAL alias with one endpoint outside the cluster", [*MESH, entry("sso.example.ae", location="MESH_INTERNAL", endpoints=[{"address": "gw.istio-ingress.svc.cluster.local"}, {"address": "sso.example.ae.attacker.example"}])], 2),
    ("SOV-ZT-005", "MESH_INTERNAL alias whose endpoint only looks like a cluster name", [*MESH, entry("sso.example.ae", location="MESH_INTERNAL", endpoints=[{"address": "gw.svc.cluster.local.attacker.example"}])], 2),
    ("SOV-ZT-005", "MESH_INTERNAL alias resolved STATIC", [*MESH, entry("sso.example.ae", location="MESH_INTERNAL", resolution="STATIC", endpoints=[{"address": "gw.istio-ingress.svc.cluster.local"}])], 3),
    ("SOV-ZT-005", "v1beta1 ServiceEntry to a public host", [*MESH, entry("example.com", typ="kubernetes:networking.istio.io/v1beta1:ServiceEntry")], 1),
]  # fmt: skip
"""SOV-ZT-005 fixtures: (rule id, label, resources, expected violations)."""
