"""The canary's error guards read the mesh's request metrics, not Triton's own counters.

Triton counts only requests that reached its scheduler, so a request it refuses before (malformed
input: 400; a full queue: 503) or one that never reached it (the pod's proxy could not connect:
503; the gateway gave up: 504) was invisible to the cluster's error guards. Every request a client
sends reaches a model through the inference gateway (``components/inference_gateway.py``) and the
model pod's sidecar, and both Envoys count it in Istio's standard ``istio_requests_total``
(labels ``reporter``, ``source_workload``, ``destination_service_name``, ``response_code`` ...).
Standard library only (the CrossGuard pack's virtualenv imports ``policies``).

**Which responses are failures.** A response is a *failure* when its code is 4xx or 5xx, except
the gateway's policy refusals :data:`REFUSALS`: 401 (no or bad token), 403 (the token's claims do
not allow the model), 413 (over the request size limit) and 429 (over the rate limit). Those are
decided before any variant is chosen, identically for stable and canary, so they say nothing
about the candidate; counting them would let a misbehaving client roll back a healthy model. Every
other 4xx (a 400 for a well-formed request is how a candidate with a changed input schema
fails; 404 a model that did not load) and every 5xx (Triton's 500 and full queue 503, the proxy's
503 when the pod is unreachable, the gateway's 504 timeout) is a client-visible failure. A
*success* is a 1xx-3xx code. Code ``0`` (the client hung up before any response) is neither.

**Two reporters, two guards.**

* ``error-rate-sprt`` (Wald's SPRT, :func:`policies.promotion.error_llr`) needs counts that grow
  with the candidate's own traffic only. The sidecar of each model pod reports as
  ``reporter="destination"``; its counters start with the pod, and the pod carries its variant
  label (the scrape copies ``sovereign-ml/variant``, as for Triton's series), so the canary
  pods' sums are exactly the candidate's requests since it started: :func:`sprt_selector`,
  restricted to requests that came through the gateway. The gateway's own counters would not do:
  they live as long as the gateway pod and keep the earlier rollouts' canary traffic under the
  same ``destination_service_name``, which would hand a new candidate the old one's evidence.
* ``slo-fast-burn`` judges a 5-minute window (``increase``), for which the gateway's
  counters are right: ``reporter="source"`` at the gateway workload, destination the canary
  Service (:func:`gateway_selector`). They also hold the failures no model pod saw: the
  gateway's 503 when no canary endpoint is healthy and its 504 when a request timed out.
"""

from __future__ import annotations

REQUESTS_METRIC = "istio_requests_total"
"""Istio's standard request counter (Telemetry API defaults, Istio 1.28)."""
GATEWAY_WORKLOAD = "inference-gateway"
"""The inference gateway's workload (Deployment) name, as Istio labels its series."""
GATEWAY_NAMESPACE = "istio-ingress"
"""The inference gateway's namespace."""
REFUSALS = ("401", "403", "413", "429")
"""Codes the gateway answers on its own policy before choosing a variant: never failures."""
FAILURE_CODES = f'response_code=~"[45]..",response_code!~"{"|".join(REFUSALS)}"'
"""Label matchers of a failed response (see the module docstring)."""
SUCCESS_CODES = 'response_code=~"[123].."'
"""Label matchers of a successful response."""


def triton_app(model: str) -> str:
    """The model pods' ``app.kubernetes.io/name`` (Istio's canonical service of the model)."""
    return f"triton-{model}"


def variant_service(model: str, variant: str) -> str:
    """Name of the Service the Rollout steers one variant's traffic through."""
    return f"{triton_app(model)}-{variant}"


def sprt_selector(model: str, variant: str, namespace: str) -> str:
    """Matchers of one variant's requests as its pods' sidecars report them, gateway traffic only.

    ``variant`` is the label the scrape copies from the pod label ``sovereign-ml/variant``.
    """
    return (
        f'reporter="destination",source_workload="{GATEWAY_WORKLOAD}",'
        f'source_workload_namespace="{GATEWAY_NAMESPACE}",'
        f'destination_canonical_service="{triton_app(model)}",'
        f'destination_workload_namespace="{namespace}",variant="{variant}"'
    )


def gateway_selector(model: str, variant: str, namespace: str) -> str:
    """Matchers of the requests the gateway sent to one variant's Service (its own report)."""
    return (
        f'reporter="source",source_workload="{GATEWAY_WORKLOAD}",'
        f'source_workload_namespace="{GATEWAY_NAMESPACE}",'
        f'destination_service_name="{variant_service(model, variant)}",'
        f'destination_service_namespace="{namespace}"'
    )


def counted(sel: str, codes: str, window: str = "") -> str:
    """PromQL: the summed counter of ``sel`` with ``codes`` (its increase over ``window`` if
    given) as a scalar, 0 when no such series exists yet."""
    series = f"{REQUESTS_METRIC}{{{sel},{codes}}}"
    inner = f"increase({series}[{window}])" if window else series
    return f"scalar(sum({inner}) or vector(0))"


# --- the names the gateway, the Rollout and the gate share ---------------------------------------
PRIMARY_ROUTE = "primary"
"""The VirtualService route whose stable/canary weights Argo Rollouts sets."""
AB_ROUTE = "ab-header"
"""The managed route Argo Rollouts adds for header-based (A/B) routing to the canary."""
AB_HEADER = "x-sovml-canary"
"""Request header that opts into the candidate while a rollout runs; its value is the model name,
so the route of one model never catches another model's requests."""
CLUSTER_ISSUER = "sovml-platform-ca"
"""The cert-manager ClusterIssuer of the platform's certificates (created with the identity
components; a private CA in production)."""


def model_paths(model: str) -> tuple[str, str]:
    """The model's KServe v2 path and the prefix of everything under it: ``/v2/models/a`` never
    matches ``/v2/models/a-b/...``."""
    return f"/v2/models/{model}", f"/v2/models/{model}/"


def model_scope(model: str) -> str:
    """The ``scope`` claim entry that allows calling ``model``."""
    return f"sovml:infer:{model}"
