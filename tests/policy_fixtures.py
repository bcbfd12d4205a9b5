# ruff: noqa: E501  (fixture builders keep one resource per line, like the case table)
"""Builders of policy-rule fixtures: resources shaped as a synth record holds them.

``tests/policy_cases.py`` holds the case table built from these.
"""

from __future__ import annotations

from typing import Any

from policies.rules import Resource

KEY = "arn:aws:kms:me-central-1:123456789012:key/abc"
PROVIDER_UAE = {
    "region": "me-central-1",
    "defaultTags": {"tags": {"owner": "o", "cost-center": "c", "data-classification": "internal"}},
}


def R(  # noqa: N802 (short on purpose: the case table uses it on every line)
    typ: str, name: str, inputs: dict[str, Any], deps: tuple[str, ...] = (), **kw: Any
) -> Resource:
    """A resource with a URN shaped like the synth's, on the UAE provider by default."""
    return Resource(
        type=typ,
        name=name,
        inputs=inputs,
        urn=f"urn:pulumi:t::sovereign-ml::{typ}::{name}",
        provider_inputs=kw.get("provider", PROVIDER_UAE),
        dependencies=deps,
    )


def _pod(kind: str = "Deployment", **container: Any) -> dict[str, Any]:
    good = {
        "name": "app",
        "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    }
    c = {**good, **container}
    spec = {"containers": [c]}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "d", "namespace": "serving"},
        "spec": {"template": {"spec": spec}},
    }


def _gpu_pod(**spec: Any) -> dict[str, Any]:
    doc = _pod(resources={"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
                          "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1}})  # fmt: skip
    doc["spec"]["template"]["spec"].update(spec)
    return doc


SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET = R("aws:s3/bucket:Bucket", "b", {"bucket": "b"})


def _sse(algorithm: str, key: str | None) -> Resource:
    default = {"sseAlgorithm": algorithm, **({"kmsMasterKeyId": key} if key else {})}
    return R(
        SSE, "b-sse", {"rules": [{"applyServerSideEncryptionByDefault": default}]}, (BUCKET.urn,)
    )


def _ns(name: str) -> Resource:
    return R("kubernetes:core/v1:Namespace", f"ns-{name}", {"metadata": {"name": name}})


def _deny(ns: str, **spec: Any) -> Resource:
    return R(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        f"deny-{ns}",
        {
            "metadata": {"name": "default-deny", "namespace": ns},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], **spec},
        },
    )


PLATFORM = ("kubeflow", "feature-store", "serving", "monitoring", "vault")


def _target(name: str, kind: str | None, api: str) -> dict[str, str]:
    return {"name": name} if kind is None else {"apiVersion": api, "kind": kind, "name": name}


def _hpa(name: str, kind: str = "Rollout", api: str = "argoproj.io/v1alpha1") -> Resource:
    return R("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", f"hpa-{name}", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "serving"},
        "spec": {"scaleTargetRef": _target(name, kind, api), "minReplicas": 1, "maxReplicas": 3},
    })  # fmt: skip


def _scaler(name: str, kind: str | None = "Rollout", namespace: str = "serving") -> Resource:
    return R("kubernetes:keda.sh/v1alpha1:ScaledObject", f"so-{name}-{namespace}", {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": _target(name, kind, "argoproj.io/v1alpha1"), "minReplicaCount": 0},
    })  # fmt: skip


EKS = "aws:eks/cluster:Cluster"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
NG = "aws:eks/nodeGroup:NodeGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def _eks(**vpc: Any) -> Resource:
    return R(EKS, "eks", {
        "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, **vpc},
        "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
    })  # fmt: skip


def _policy(statement: dict[str, Any]) -> Resource:
    import json

    return R(ROLE_POLICY, "p", {"policy": json.dumps({"Statement": [statement]})})


PROVIDER = "pulumi:providers:aws"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
MANAGED = "arn:aws:iam::aws:policy/"


def _prov(**inputs: Any) -> Resource:
    """An in-zone AWS provider that validates its region, plus ``inputs``."""
    return R(PROVIDER, "aws", {"region": "me-central-1", "skipRegionValidation": "false", **inputs})


def _allow(action: Any, resource: Any = "*", **more: Any) -> Resource:
    return _policy({"Effect": "Allow", "Action": action, "Resource": resource, **more})


def _resource_policy(typ: str, statement: dict[str, Any], field: str = "policy") -> Resource:
    import json

    return R(typ, "rp", {field: json.dumps({"Version": "2012-10-17", "Statement": [statement]})})


def _sg(*cidrs: str, name: str = "sg", key: str = "cidrBlocks", **kw: Any) -> Resource:
    rule = {"protocol": "tcp", "fromPort": 443, "toPort": 443, key: list(cidrs)}
    return R(SG, name, {"ingress": [rule] if cidrs else [], **kw})


def _sg_rule(sg: Resource, name: str, deps: tuple[str, ...] = (), **inputs: Any) -> Resource:
    return R(SG_RULE, name, {"type": "ingress", "protocol": "-1", "fromPort": 0, "toPort": 0,
                             "securityGroupId": "sg-1", **inputs}, (sg.urn, *deps))  # fmt: skip


def _ingress_rule(
    sg: Resource | None, name: str, deps: tuple[str, ...] = (), **inputs: Any
) -> Resource:
    owner = (sg.urn,) if sg else ()
    inputs = {"ipProtocol": "-1", "securityGroupId": "sg-1", **inputs}
    return R(SG_INGRESS, name, inputs, (*owner, *deps))


PL_URN = "urn:pulumi:t::sovereign-ml::aws:ec2/managedPrefixList:ManagedPrefixList::pl"


def _prefix_list(*cidrs: str) -> Resource:
    return R(PREFIX_LIST, "pl", {"addressFamily": "IPv4", "maxEntries": 5,
                                 "entries": [{"cidr": c} for c in cidrs]})  # fmt: skip


def _public_principal(**more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sqs:SendMessage",
            "Resource": "arn:aws:sqs:me-central-1:123456789012:q", **more}  # fmt: skip


# --- Kubernetes isolation (policies/rules/isolation.py, allowlist.py, helm_charts.py) ---
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
HELM = "kubernetes:helm.sh/v3:Release"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"


def _wl(
    kind: str = "Deployment",
    ns: str = "serving",
    name: str = "d",
    image: str | None = None,
    mounts: tuple[dict[str, Any], ...] = (),
    sc: dict[str, Any] | None = None,
    **spec: Any,
) -> Resource:
    """A hardened workload in ``ns``; ``spec`` adds pod spec fields, ``sc`` replaces the
    container securityContext."""
    container: dict[str, Any] = {"image": image} if image else {}
    if mounts:
        container["volumeMounts"] = list(mounts)
    if sc is not None:
        container["securityContext"] = sc
    doc = _pod(kind, **container)
    doc["metadata"] = {"name": name, "namespace": ns}
    (doc["spec"] if kind == "Pod" else doc["spec"]["template"]["spec"]).update(spec)
    group = "core/v1" if kind == "Pod" else "apps/v1"
    return R(f"kubernetes:{group}:{kind}", f"{name}-{ns}", doc)


def _host(path: str, name: str = "host") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path}}


def _plugin(
    ns: str = "kube-system",
    image: str = PLUGIN_IMAGE,
    path: str = "/var/lib/kubelet/device-plugins",
) -> Resource:
    """The NVIDIA device plugin DaemonSet as components/gpu_device_plugin.py declares it."""
    sc = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return _wl("DaemonSet", ns, "nvidia-device-plugin", image, ({"name": "dp", "mountPath": path},), sc,
               volumes=[_host(path, "dp")], tolerations=[GPU_TOLERATION],
               nodeSelector={"sovereign-ml/pool": "gpu"})  # fmt: skip


def _netpol(ns: str = "serving", selector: dict[str, Any] | None = None, **spec: Any) -> Resource:
    return R(NETPOL, f"np-{ns}", {"metadata": {"name": "np", "namespace": ns},
                                  "spec": {"podSelector": selector or {}, **spec}})  # fmt: skip


def _release(
    chart: str, version: str, ns: str, repo: str, typ: str = HELM, **values: Any
) -> Resource:
    return R(typ, f"rel-{chart}-{ns}", {"name": chart, "chart": chart, "version": version, "namespace": ns,
                                        "repositoryOpts": {"repo": repo}, "values": values})  # fmt: skip


PROM_REPO = "https://prometheus-community.github.io/helm-charts"
DCGM_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
GPU_POOL = {"nodeSelector": {"sovereign-ml/pool": "gpu"}, "tolerations": [GPU_TOLERATION]}


def _dcgm(ns: str = "kube-system", **values: Any) -> Resource:
    return _release("dcgm-exporter", "3.6.1", ns, DCGM_REPO, **GPU_POOL, **values)


def _prom(**values: Any) -> Resource:
    return _release("kube-prometheus-stack", "65.1.1", "monitoring", PROM_REPO, **values)


def _affinity(key: str, *values: str) -> dict[str, Any]:
    term = {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


ECR_REPL = "aws:ecr/replicationConfiguration:ReplicationConfiguration"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
FIREHOSE_CMK = {
    "serverSideEncryption": {"enabled": True, "keyType": "CUSTOMER_MANAGED_CMK", "keyArn": KEY}
}
DDB = "aws:dynamodb/table:Table"
DDB_CMK = {"serverSideEncryption": {"enabled": True, "kmsKeyArn": KEY}}
PARAM = "aws:ssm/parameter:Parameter"


def _replicate_to(bucket_arn: str) -> dict[str, Any]:
    return {
        "bucket": "b",
        "role": "arn:aws:iam::aws:role/r",
        "rules": [{"status": "Enabled", "destination": {"bucket": bucket_arn}}],
    }


AUDIT_BUCKET_NAME = "audit-b"
AUDIT_BUCKET = R(
    "aws:s3/bucket:Bucket", "ab", {"bucket": AUDIT_BUCKET_NAME, "objectLockEnabled": True}
)
GOOD_TRAIL: dict[str, Any] = {
    "name": "t", "s3BucketName": AUDIT_BUCKET_NAME, "enableLogFileValidation": True, "kmsKeyId": KEY,
    "cloudWatchLogsGroupArn": "arn:aws:logs:me-central-1:123456789012:log-group:/t:*",
    "cloudWatchLogsRoleArn": "arn:aws:iam::123456789012:role/t",
    "eventSelectors": [{"includeManagementEvents": True, "readWriteType": "All"}],
}  # fmt: skip


def _trail(**changes: Any) -> Resource:
    """A CloudTrail trail, the compliant one unless ``changes`` say otherwise (None removes)."""
    inputs = {k: v for k, v in {**GOOD_TRAIL, **changes}.items() if v is not None}
    return R("aws:cloudtrail/trail:Trail", "trail", inputs)


def _lock(mode: str = "COMPLIANCE", **span: int) -> Resource:
    """The audit bucket's Object Lock configuration (365 days unless ``span`` says)."""
    retention = {"mode": mode, **(span or {"days": 365})}
    return R("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration", "lock",
             {"bucket": AUDIT_BUCKET_NAME, "rule": {"defaultRetention": retention}}, (AUDIT_BUCKET.urn,))  # fmt: skip


def _detection(
    guardduty: bool = True, config: bool = True, recording: bool = True
) -> list[Resource]:
    """GuardDuty and AWS Config resources of one region (UAE), each part optional."""
    out = [R("aws:guardduty/detector:Detector", "gd", {"enable": True})] if guardduty else []
    if config:
        out += [R("aws:cfg/recorder:Recorder", "rec", {"roleArn": "arn:aws:iam::123456789012:role/c"}),
                R("aws:cfg/deliveryChannel:DeliveryChannel", "ch", {"s3BucketName": AUDIT_BUCKET_NAME}),
                R("aws:cfg/recorderStatus:RecorderStatus", "st", {"isEnabled": recording, "name": "rec"})]  # fmt: skip
    return out
