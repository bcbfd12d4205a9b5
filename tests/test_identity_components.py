"""Certificates and single sign-on (#22) under the recording mocks: the platform issuer in both
postures, Vault's certificate, Dex and oauth2-proxy behind the HTTPS gateway, operators' Vault
login, and the arguments each component refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components._dex import SsoSettings, WebUi, dex_config
from components.cert_issuer import (
    PLATFORM_ISSUER,
    VAULT_TLS_SECRET,
    CertificateIssuer,
    CertificateIssuerArgs,
    issuer_ref,
)
from components.sso import (
    INGRESS_GATEWAY_LABELS,
    INGRESS_GATEWAY_PRINCIPAL,
    SingleSignOn,
    SingleSignOnArgs,
)
from tests.component_mocks import ACCESS, children_named_after, of_type, record

HELM = "kubernetes:helm.sh/v3:Release"
CR = "kubernetes:{}"
SSO = SsoSettings(
    connector="oidc",
    domain="ml.example.ae",
    allowed_groups=("ml-users",),
    operator_group="ml-ops",
    oidc_issuer="https://login.example.ae",
    oidc_client_id="dex",
)
UI = WebUi("pipelines", "pipelines", "kubeflow", "ml-pipeline-ui", 80, 3000, {"app": "ui"})
UPSTREAM_SECRET = "upstream-client-secret-do-not-leak"


def _issuer(private_ca: bool, **overrides: Any) -> CertificateIssuerArgs:
    fields: dict[str, Any] = {
        "cluster_access": ACCESS,
        "vpc_cidr": "10.40.0.0/16",
        "ca_common_name": "sovml t platform CA",
        "organization": "ml-platform",
        "private_ca": private_ca,
        **overrides,
    }
    return CertificateIssuerArgs(**fields)


def _kinds(res: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in res:
        if "kind" in r["inputs"]:
            out.setdefault(r["inputs"]["kind"], []).append(r["inputs"])
    return out


def test_production_issues_from_a_protected_private_ca_with_a_least_privilege_role() -> None:
    res = record(lambda: CertificateIssuer("certs", _issuer(True)))
    children_named_after(res, "sovereign-ml:cert_issuer:CertificateIssuer", "certs")
    (ca,) = of_type(res, "aws:acmpca/certificateAuthority:CertificateAuthority")
    assert ca["protect"] and ca["inputs"]["type"] == "ROOT"
    assert ca["inputs"]["keyStorageSecurityStandard"] == "FIPS_140_2_LEVEL_2_OR_HIGHER"
    (cert,) = of_type(res, "aws:acmpca/certificate:Certificate")
    assert cert["inputs"]["templateArn"].endswith(":acm-pca:::template/RootCACertificate/V1")
    assert of_type(
        res, "aws:acmpca/certificateAuthorityCertificate:CertificateAuthorityCertificate"
    )
    (inline,) = of_type(res, "aws:iam/rolePolicy:RolePolicy")
    (statement,) = json.loads(inline["inputs"]["policy"])["Statement"]
    assert statement["Action"] == [
        "acm-pca:IssueCertificate",
        "acm-pca:GetCertificate",
        "acm-pca:DescribeCertificateAuthority",
    ]
    assert statement["Resource"] != "*" and statement["Resource"].startswith("arn:")
    (role,) = of_type(res, "aws:iam/role:Role")
    assert (
        "system:serviceaccount:cert-manager:aws-privateca-issuer"
        in role["inputs"]["assumeRolePolicy"]
    )
    kinds = _kinds(res)
    (issuer,) = kinds["AWSPCAClusterIssuer"]
    assert issuer["metadata"]["name"] == PLATFORM_ISSUER and "ClusterIssuer" not in kinds
    releases = {r["inputs"]["name"]: r for r in of_type(res, HELM)}
    assert set(releases) == {"cert-manager", "aws-privateca-issuer"}
    values = releases["cert-manager"]["inputs"]["values"]
    assert values["crds"] == {"enabled": True, "keep": True}
    assert values["securityContext"]["runAsNonRoot"] is True
    (vault_cert,) = kinds["Certificate"]
    assert vault_cert["metadata"] == {**vault_cert["metadata"], "namespace": "vault"}
    assert vault_cert["spec"]["secretName"] == VAULT_TLS_SECRET
    assert vault_cert["spec"]["issuerRef"] == issuer_ref(True)
    assert {"vault-0.vault-internal", "vault.vault.svc"} <= set(vault_cert["spec"]["dnsNames"])
    assert "client auth" in vault_cert["spec"]["usages"]


def test_elsewhere_a_bootstrap_ca_signs_the_platform_ca_of_the_same_name() -> None:
    res = record(lambda: CertificateIssuer("certs", _issuer(False, protect=False)))
    assert not of_type(res, "aws:acmpca/certificateAuthority:CertificateAuthority")
    assert not of_type(res, "aws:iam/role:Role")
    kinds = _kinds(res)
    issuers = {i["metadata"]["name"]: i["spec"] for i in kinds["ClusterIssuer"]}
    assert issuers == {
        "sovml-selfsigned-bootstrap": {"selfSigned": {}},
        PLATFORM_ISSUER: {"ca": {"secretName": PLATFORM_ISSUER}},
    }
    certs = {c["spec"]["secretName"]: c for c in kinds["Certificate"]}
    ca = certs[PLATFORM_ISSUER]
    assert ca["spec"]["isCA"] is True and ca["metadata"]["namespace"] == "cert-manager"
    assert ca["spec"]["issuerRef"]["name"] == "sovml-selfsigned-bootstrap"
    # Only the CA certificate is self-signed; Vault's comes from the platform issuer.
    assert certs[VAULT_TLS_SECRET]["spec"]["issuerRef"] == issuer_ref(False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"namespace": "kube-system"}, "CertificateIssuerArgs.namespace"),
        ({"vault_namespace": ""}, "CertificateIssuerArgs.vault_namespace"),
        ({"ca_common_name": "x" * 65}, "allowed 1-64 characters"),
        ({"ca_common_name": " "}, "allowed 1-64 characters"),
        ({"vpc_cidr": "10.40.0.1/16"}, "CertificateIssuerArgs.vpc_cidr"),
    ],
)
def test_the_issuer_refuses_bad_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CertificateIssuer("certs", _issuer(False, **overrides))


def _sso(**overrides: Any) -> SingleSignOnArgs:
    fields: dict[str, Any] = {
        "settings": SSO,
        "uis": [UI],
        "issuer_ref": issuer_ref(False),
        "connector_secret": UPSTREAM_SECRET,
        **overrides,
    }
    return SingleSignOnArgs(**fields)


@pytest.fixture(scope="module")
def sso_record() -> list[dict]:
    return record(lambda: SingleSignOn("sso", _sso()))


def test_no_credential_reaches_a_record_in_plain_text(sso_record: list[dict]) -> None:
    text = json.dumps(sso_record)
    assert UPSTREAM_SECRET not in text
    assert not [r for r in sso_record if r["inputs"].get("kind") == "ConfigMap"]
    (dex,) = [r for r in of_type(sso_record, HELM) if r["inputs"]["name"] == "dex"]
    values = dex["inputs"]["values"]
    # The chart creates no config Secret from values: ours holds it.
    assert values["configSecret"] == {"create": False, "name": "dex-config"} and not values.get(
        "config"
    )
    secrets = {
        r["inputs"]["metadata"]["name"]: r["inputs"]
        for r in of_type(sso_record, "kubernetes:core/v1:Secret")
    }
    assert secrets["dex-config"]["stringData"] == {"config.yaml": "[secret]"}
    assert set(secrets["oauth2-proxy-pipelines"]["stringData"]) == {
        "client-id",
        "client-secret",
        "cookie-secret",
    }


def test_the_front_door_is_https_only_and_routes_to_the_proxies_never_the_uis(
    sso_record: list[dict],
) -> None:
    kinds = _kinds(sso_record)
    (gateway,) = kinds["Gateway"]
    assert gateway["spec"]["selector"] == INGRESS_GATEWAY_LABELS
    (server,) = gateway["spec"]["servers"]
    assert server["port"]["protocol"] == "HTTPS" and server["port"]["number"] == 443
    assert server["tls"]["mode"] == "SIMPLE" and server["tls"]["minProtocolVersion"] == "TLSV1_2"
    (cert,) = kinds["Certificate"]
    assert cert["metadata"]["namespace"] == "istio-ingress"
    assert cert["spec"]["secretName"] == server["tls"]["credentialName"]
    assert set(cert["spec"]["dnsNames"]) == {"sso.ml.example.ae", "pipelines.ml.example.ae"}
    destinations = {
        vs["spec"]["hosts"][0]: vs["spec"]["http"][0]["route"][0]["destination"]["host"]
        for vs in kinds["VirtualService"]
    }
    assert destinations == {
        "sso.ml.example.ae": "dex.auth.svc.cluster.local",
        "pipelines.ml.example.ae": "oauth2-proxy-pipelines.auth.svc.cluster.local",
    }
    assert all(vs["spec"]["gateways"] == ["auth/sso"] for vs in kinds["VirtualService"])


def test_mesh_policies_admit_exactly_the_gateway_and_the_proxy(sso_record: list[dict]) -> None:
    policies = {p["metadata"]["name"]: p for p in _kinds(sso_record)["AuthorizationPolicy"]}
    ui = policies["allow-pipelines-from-oauth2-proxy-pipelines"]
    assert ui["metadata"]["namespace"] == "kubeflow" and ui["spec"]["action"] == "ALLOW"
    assert ui["spec"]["rules"] == [
        {
            "from": [
                {"source": {"principals": ["cluster.local/ns/auth/sa/oauth2-proxy-pipelines"]}}
            ],
            "to": [{"operation": {"ports": ["3000"]}}],
        }
    ]
    proxies = policies["allow-proxies-from-gateway"]["spec"]["rules"][0]
    assert proxies["from"][0]["source"]["principals"] == [INGRESS_GATEWAY_PRINCIPAL]


def test_the_proxy_admits_the_allowed_groups_with_secure_cookies(sso_record: list[dict]) -> None:
    (proxy,) = [r for r in of_type(sso_record, HELM) if r["inputs"]["name"].startswith("oauth2")]
    extra = proxy["inputs"]["values"]["extraArgs"]
    assert extra["allowed-group"] == "ml-users" and extra["cookie-secure"] == "true"
    assert extra["upstream"] == "http://ml-pipeline-ui.kubeflow.svc.cluster.local:80"
    assert extra["redirect-url"] == "https://pipelines.ml.example.ae/oauth2/callback"
    assert proxy["inputs"]["values"]["config"] == {"existingSecret": "oauth2-proxy-pipelines"}


@pytest.mark.parametrize("kind", ["oidc", "saml", "ldap"])
def test_dex_gets_exactly_one_connector_and_no_local_passwords(kind: str) -> None:
    settings = SsoSettings(
        connector=kind,
        domain="ml.example.ae",
        allowed_groups=("g",),
        oidc_issuer="https://login.example.ae",
        oidc_client_id="dex",
        saml_sso_url="https://idp.example.ae/sso",
        saml_ca_data="Y2E=",
        ldap_host="ldap.example.ae:636",
        ldap_bind_dn="cn=dex",
        ldap_user_base_dn="ou=people",
        ldap_group_base_dn="ou=groups",
    )
    config = dex_config(settings, [UI], "s3cret", "ui", "vault")
    (connector,) = config["connectors"]
    assert connector["type"] == kind and config["enablePasswordDB"] is False
    if kind == "ldap":
        assert connector["config"]["insecureNoSSL"] is False
        assert connector["config"]["insecureSkipVerify"] is False
        assert connector["config"]["startTLS"] is False
    clients = {c["id"]: c["redirectURIs"] for c in config["staticClients"]}
    assert clients["web-uis"] == ["https://pipelines.ml.example.ae/oauth2/callback"]
    assert "http://localhost:8250/oidc/callback" in clients["vault"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"connector_secret": None}, "required for oidc and ldap, refused for saml"),
        ({"uis": []}, "SingleSignOnArgs.uis: empty"),
        ({"uis": [UI, UI]}, "must be distinct"),
        ({"uis": [WebUi("sso", "sso", "a", "b", 1, 1, {})]}, "must be distinct"),
        ({"uis": [WebUi("x", "Bad_Host", "a", "b", 1, 1, {})]}, "must be DNS labels"),
        ({"settings": SsoSettings("kerberos", "a.ae", ("g",))}, "SsoSettings.connector"),
        ({"settings": SsoSettings("oidc", "localhost", ("g",))}, "SsoSettings.domain"),
        ({"settings": SsoSettings("oidc", "ml.example.ae", ())}, "allowed_groups: empty"),
        (
            {"settings": SsoSettings("saml", "ml.example.ae", ("g",))},
            "required for oidc and ldap, refused for saml",
        ),
    ],
)
def test_sso_refuses_bad_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SingleSignOn("sso", _sso(**overrides))


def test_vault_config_declares_operator_sso_with_the_secret_and_refuses_it_without() -> None:
    from components.vault_config import VaultConfig, VaultConfigArgs
    from components.vault_layout import OperatorSso, layout

    operators = OperatorSso(SSO.issuer, "vault", "ml-ops")
    res = record(
        lambda: VaultConfig(
            "vc",
            VaultConfigArgs(
                layout=layout(["acme"], operators=operators),
                kubernetes_host="https://k8s",
                oidc_client_secret="vault-client-secret-do-not-leak",
            ),
        )
    )
    assert "vault-client-secret-do-not-leak" not in json.dumps(res)
    (backend,) = of_type(res, "vault:jwt/authBackend:AuthBackend")
    assert backend["inputs"]["oidcDiscoveryUrl"] == backend["inputs"]["boundIssuer"] == SSO.issuer
    roles = {
        r["inputs"]["roleName"]: r["inputs"]
        for r in of_type(res, "vault:jwt/authBackendRole:AuthBackendRole")
    }
    assert set(roles) == {"operator", "operator-jwt"}
    for role in roles.values():
        assert role["boundAudiences"] == ["vault"]
        assert role["boundClaims"] == {"groups": "ml-ops"}
        assert role["tokenPolicies"] == ["operator"]
    with pytest.raises(ValueError, match=r"given exactly when layout\.operators is set"):
        VaultConfig(
            "vc2",
            VaultConfigArgs(layout=layout(["acme"], operators=operators), kubernetes_host="h"),
        )


def test_vault_reaches_the_public_issuer_through_the_gateway_only(sso_record: list[dict]) -> None:
    (entry,) = _kinds(sso_record)["ServiceEntry"]
    assert entry["spec"]["hosts"] == ["sso.ml.example.ae"]
    assert entry["spec"]["location"] == "MESH_INTERNAL"
    assert entry["spec"]["endpoints"] == [
        {"address": "inference-gateway.istio-ingress.svc.cluster.local"}
    ]
    assert entry["spec"]["exportTo"] == ["vault"]


def test_kubeflow_with_profile_owners_is_multi_user_with_one_profile_per_tenant() -> None:
    from tests.test_components_workloads import _kubeflow

    res = record(lambda: _kubeflow(profile_owners=(("acme", "lead@example.ae"),)))
    (kfp,) = of_type(res, "kubernetes:kustomize/v2:Directory")
    assert kfp["inputs"]["directory"].endswith("components/manifests/kfp-multi-user")
    (profile,) = _kinds(res)["Profile"]
    assert profile["apiVersion"] == "kubeflow.org/v1" and profile["metadata"]["name"] == "acme"
    assert profile["spec"] == {"owner": {"kind": "User", "name": "lead@example.ae"}}
    # Without owners, nothing changes: single-user KFP and no Profile.
    plain = record(_kubeflow)
    assert "Profile" not in _kinds(plain)
    (kfp,) = of_type(plain, "kubernetes:kustomize/v2:Directory")
    assert kfp["inputs"]["directory"].endswith("components/manifests/kfp")


@pytest.mark.parametrize(
    "owners",
    [(("other", "x@example.ae"),), (("acme", "a@example.ae"), ("globex", "b@example.ae"))],
)
def test_kubeflow_refuses_owners_that_are_not_its_tenants(owners: tuple) -> None:
    from tests.test_components_workloads import _kubeflow

    with pytest.raises(ValueError, match="allowed one owner per tenant"):
        _kubeflow(profile_owners=owners)


def test_the_multi_user_overlay_keeps_the_single_user_removals() -> None:
    """The platform still owns MinIO's replacement (S3), the DB and the IRSA accounts."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1] / "components" / "manifests"
    single = yaml.safe_load((root / "kfp" / "kustomization.yaml").read_text())
    multi = yaml.safe_load((root / "kfp-multi-user" / "kustomization.yaml").read_text())
    assert [p for p in single["patches"] if "$patch: delete" in p["patch"]] == [
        p for p in multi["patches"] if "$patch: delete" in p["patch"]
    ]
    assert all("?ref=" in r for r in multi["resources"])
    assert any("platform-agnostic-multi-user?ref=2.4.0" in r for r in multi["resources"])
