"""The chart table of certificates and single sign-on (#22): cert-manager, the AWS Private CA
issuer, Dex and oauth2-proxy, as :mod:`policies.rules.helm_charts` reads them.

Read from each chart's values.yaml (the stored copies: aws-privateca-issuer v1.7.0-era
``podSecurityContext``/``securityContext``; dex 0.22-era ``podSecurityContext``/
``securityContext``/``volumes``; oauth2-proxy 7.x ``podSecurityContext``/``securityContext``/
``extraVolumes``); cert-manager's controller ``securityContext``/``containerSecurityContext``/
``volumes`` read in a pre-1.15 copy (95d6fc4), the same keys under ``webhook``, ``cainjector`` and
``startupapicheck`` as its chart documents them (not read at v1.19.1 here). None of them renders a
host namespace or host mount by default.
"""

from __future__ import annotations

from policies.rules.chart_pods import Chart, ChartPod, common, pinned


def _simple(name: str, pod: str, container: str, volumes: str) -> ChartPod:
    """A one-pod chart with top-level security, scheduling and volume values."""
    return ChartPod(
        name, pod_security=pod, container_security=container, volumes=(volumes,), **common()
    )


def _cert_manager_pod(name: str, prefix: str, enabled: str = "") -> ChartPod:
    p = f"{prefix}." if prefix else ""
    return ChartPod(
        name,
        enabled=enabled,
        pod_security=f"{p}securityContext",
        container_security=f"{p}containerSecurityContext",
        host_network=f"{p}hostNetwork" if prefix == "webhook" else "",
        volumes=(f"{p}volumes",),
        **common(prefix),
    )


IDENTITY_CHARTS: dict[str, Chart] = {
    "cert-manager": Chart(
        *pinned("cert-manager-chart"),
        (
            _cert_manager_pod("controller", ""),
            _cert_manager_pod("webhook", "webhook"),
            _cert_manager_pod("cainjector", "cainjector", "cainjector.enabled"),
            _cert_manager_pod("startupapicheck", "startupapicheck", "startupapicheck.enabled"),
        ),
    ),
    "aws-privateca-issuer": Chart(
        *pinned("aws-privateca-issuer-chart"),
        (_simple("issuer", "podSecurityContext", "securityContext", "volumes"),),
    ),
    "dex": Chart(
        *pinned("dex-chart"),
        (_simple("dex", "podSecurityContext", "securityContext", "volumes"),),
    ),
    "oauth2-proxy": Chart(
        *pinned("oauth2-proxy-chart"),
        (_simple("oauth2-proxy", "podSecurityContext", "securityContext", "extraVolumes"),),
    ),
}
"""Charts of :mod:`components.cert_issuer` and :mod:`components.sso`, by chart name."""
