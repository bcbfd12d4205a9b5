"""``sovml tenant offboard`` as logic: a tenant's keys found in its record, shredded, certified.

Crypto-shredding: a tenant's data is destroyed by destroying the keys it is encrypted under. The
keys are found from the tenant stack's synth record, never guessed: every ``aws:kms/key:Key``
(located in the account by the ``alias/...`` the record gives it, since the record's ids are
the mocks') and the Vault transit key of each tenant namespace of the stack
(:func:`components.vault_layout.layout`, the same function the program declares them with, on
the ``transit`` mount). The platform transit key of the tenant's own Vault is not deleted here:
that Vault auto-unseals with the stack's ``vault`` KMS key, whose deletion is scheduled with the
others, so the whole Vault becomes unreadable when that key is gone.

The steps: :func:`resolve_tenant` (a tenant stack, never a platform one), :func:`plan_offboarding`
(what would be shredded; changes nothing), :func:`shred_plan` (every service checked before any
key changes, then each key shredded) and :func:`write_certificate`. The :class:`Certificate` is
returned as data so one call can also record it in the audit log.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.vault_layout import TRANSIT_PATH
from components.vault_layout import layout as vault_layout
from infra.config.problems import StackFileError
from infra.config.redaction import quoted
from infra.config.stackfile import STACKS, list_stacks, load_stack, read_stack_config
from infra.synth.fresh import fresh_record
from infra.synth.runner import BUILD, SynthError
from infra.tenants.create import name_problems
from infra.tenants.shredders import KeyShredder, Outcome, ServiceUnavailableError, iso
from policies.zones import ZONES

CERTIFICATE_KIND = "sovml-tenant-offboarding-certificate"
"""The ``kind`` of every certificate body."""
CERTIFICATE_VERSION = 1
"""Format version of the certificate body."""
KMS_WINDOW = (7, 30)
"""The pending-window days KMS accepts for ``schedule_key_deletion``."""
_KEY_TYPE, _ALIAS_TYPE = "aws:kms/key:Key", "aws:kms/alias:Alias"
_TENANT_KEY, _TENANTS_KEY = "sovereign-ml:tenant", "sovereign-ml:tenants"


class OffboardInputError(Exception):
    """The tenant cannot be offboarded as asked (exit 2); ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class KeyTarget:
    """One key the plan shreds."""

    service: str
    """``kms`` or ``vault``."""
    name: str
    """The KMS alias (``alias/sovml-acme-storage``) or the Vault transit key name."""
    purpose: str
    """The key's purpose (``storage``...) or, for Vault, the tenant namespace it serves."""
    resource: str
    """The record's resource name (``keys-storage``), or ``vault_layout`` for a transit key."""
    problem: str | None = None
    """Why the key cannot be located (a KMS key without an alias in the record), or None."""


@dataclass(frozen=True)
class OffboardPlan:
    """What offboarding a tenant shreds, from its stack's synth record."""

    tenant: str
    """The tenant (the stack's ``sovereign-ml:tenant``)."""
    stack: str
    """The tenant's stack."""
    region: str
    """Region the KMS keys are in (the stack's, unless ``--region`` named another in the zone)."""
    zone: str
    """The stack's residency zone."""
    deletion_window_days: int
    """The stack's ``kmsDeletionWindowDays``: the pending window of every scheduled deletion."""
    transit_mount: str
    """Mount of the transit engine the tenant's keys are on."""
    record_fingerprint: str
    """Fingerprint digest of the synth record the plan was read from."""
    keys: tuple[KeyTarget, ...]
    """KMS keys first (reversible during the window), then the transit keys (immediate)."""


@dataclass(frozen=True)
class KeyRecord:
    """One key in a certificate: what it was, what it is now."""

    service: str
    """``kms`` or ``vault``."""
    name: str
    """KMS alias or Vault transit key name."""
    purpose: str
    """Purpose (KMS) or tenant namespace (Vault)."""
    key_id: str | None
    """KMS key id the alias resolved to; the Vault key name; None when not found."""
    arn: str | None
    """KMS key ARN; None for Vault or when not found."""
    state_before: str
    """The service's state before offboarding."""
    state_after: str
    """The service's state after it."""
    outcome: Outcome
    """``scheduled``, ``already-pending``, ``deleted``, ``absent`` or ``refused``."""
    scheduled_deletion: str | None
    """UTC time a KMS key is deleted; None for Vault keys (deleted at once) and refusals."""
    detail: str
    """The service's reason for a refusal, or a note."""


@dataclass(frozen=True)
class Certificate:
    """What was shredded, by whom and when; its body's SHA-256 makes later edits visible."""

    body: dict[str, Any]
    """The certificate body (JSON-able): tenant, stack, who, when, keys, outcome."""
    path: Path | None = None
    """Where it was written, once written."""

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of :func:`canonical` ``(body)``."""
        return hashlib.sha256(canonical(self.body)).hexdigest()

    @property
    def refused(self) -> list[dict[str, Any]]:
        """The keys that were not shredded."""
        return [k for k in self.body["keys"] if k["outcome"] == "refused"]

    @property
    def complete(self) -> bool:
        """True when no key was refused (every key is scheduled, pending, deleted or absent)."""
        return not self.refused

    def document(self) -> dict[str, Any]:
        """The file's content: ``{"certificate": body, "sha256": digest}``."""
        return {"certificate": self.body, "sha256": self.sha256}


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the certificate digest is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_certificate(path: Path) -> bool:
    """Whether the certificate file at ``path`` still matches its recorded SHA-256."""
    document = json.loads(path.read_text(encoding="utf-8"))
    body = document.get("certificate") if isinstance(document, dict) else None
    if not isinstance(body, dict):
        return False
    return hashlib.sha256(canonical(body)).hexdigest() == document.get("sha256")


# ------------------------------------------------------------------------------ resolution


@dataclass(frozen=True)
class _Directory:
    """What the stack files of a folder say about tenants."""

    tenants: dict[str, list[str]]
    """Tenant name -> the stacks that name it as their ``sovereign-ml:tenant``."""
    namespaces: dict[str, list[str]]
    """Tenant namespace of a shared platform stack -> those platform stacks."""
    platform: list[str]
    """Stacks without a tenant (shared platforms)."""


def _directory(stacks_dir: Path) -> _Directory:
    """Read every stack file's tenant keys; unreadable files are skipped (they name no one)."""
    tenants: dict[str, list[str]] = {}
    namespaces: dict[str, list[str]] = {}
    platform: list[str] = []
    for stack in list_stacks(stacks_dir):
        try:
            raw, _secrets = read_stack_config(stacks_dir / f"Pulumi.{stack}.yaml")
        except (StackFileError, OSError):
            continue
        owner = raw.get(_TENANT_KEY)
        if isinstance(owner, str) and owner:
            tenants.setdefault(owner, []).append(stack)
            continue
        platform.append(stack)
        listed = raw.get(_TENANTS_KEY)
        for namespace in listed if isinstance(listed, list) else []:
            if isinstance(namespace, str):
                namespaces.setdefault(namespace, []).append(stack)
    return _Directory(tenants, namespaces, platform)


def known_tenants(stacks_dir: Path = STACKS) -> list[str]:
    """Tenants that own a stack in ``stacks_dir``, sorted."""
    return sorted(_directory(stacks_dir).tenants)


def resolve_tenant(name: str, stacks_dir: Path = STACKS) -> str:
    """The stack of tenant ``name``: the one stack whose ``sovereign-ml:tenant`` is ``name``.

    Raises:
        OffboardInputError: A bad name, a platform stack, a namespace of a platform stack, an
            unknown tenant (the known ones are listed), a tenant named by several stacks, or an
            invalid stack file.
    """
    if problems := name_problems(name):
        raise OffboardInputError(f"cannot offboard {quoted(name)}", problems)
    found = _directory(stacks_dir)
    known = ", ".join(sorted(found.tenants)) or f"none in {stacks_dir}"
    stacks = found.tenants.get(name, [])
    if len(stacks) > 1:
        raise OffboardInputError(
            f"tenant {quoted(name)} is named by several stacks: {', '.join(stacks)}; "
            "offboard by hand after removing the duplicates"
        )
    if not stacks:
        if name in found.platform:
            why = f"{quoted(name)} is a shared platform stack (no {_TENANT_KEY}), not a tenant"
        elif name in found.namespaces:
            where = ", ".join(found.namespaces[name])
            why = (
                f"{quoted(name)} is a tenant namespace of the shared platform stack {where}, "
                "not a tenant stack (its data is also under the platform's shared KMS keys)"
            )
        elif (stacks_dir / f"Pulumi.{name}.yaml").exists():
            why = f"the stack file of {quoted(name)} is unreadable or malformed"
        else:
            why = f"unknown tenant {quoted(name)}"
        raise OffboardInputError(f"{why}; known tenants: {known}")
    stack = stacks[0]
    try:
        load_stack(stack, stacks_dir)
    except StackFileError as exc:
        raise OffboardInputError(str(exc), [str(p) for p in exc.problems]) from None
    return stack


# ------------------------------------------------------------------------------------- plan


def plan_from_record(tenant: str, record: Mapping[str, Any], region: str | None) -> OffboardPlan:
    """The keys of a tenant stack's synth record, the window and region to shred them with.

    Raises:
        OffboardInputError: The record is not the tenant's, names no key, the window is outside
            KMS's 7-30 days, or ``region`` lies outside the stack's residency zone.
    """
    config = record["config"]
    if config.get("tenant") != tenant:
        raise OffboardInputError(
            f"the record of stack {record.get('stack')!r} belongs to tenant "
            f"{config.get('tenant')!r}, not {tenant!r}"
        )
    zone = ZONES[config["zone"]]
    if region is not None and region not in zone.region_names:
        raise OffboardInputError(
            f"--region {quoted(region)} is outside the stack's residency zone {zone.name!r} "
            f"(allowed: {', '.join(zone.region_names)})"
        )
    window = config["kms_deletion_window_days"]
    if not (isinstance(window, int) and KMS_WINDOW[0] <= window <= KMS_WINDOW[1]):
        raise OffboardInputError(
            f"kms_deletion_window_days {window!r}: KMS accepts {KMS_WINDOW[0]}-{KMS_WINDOW[1]}"
        )
    resources = record["resources"]
    aliases: dict[str, list[str]] = {}
    for r in resources:
        if r["type"] == _ALIAS_TYPE:
            aliases.setdefault(str(r["inputs"].get("targetKeyId")), []).append(r["inputs"]["name"])
    keys: list[KeyTarget] = []
    for r in resources:
        if r["type"] != _KEY_TYPE:
            continue
        purpose = str(r["inputs"].get("tags", {}).get("purpose", r["name"]))
        names = sorted(aliases.get(str(r.get("id")), []))
        if names:
            keys.append(KeyTarget("kms", names[0], purpose, r["name"]))
        else:
            problem = "no alias in the synth record: it cannot be found in the account"
            keys.append(KeyTarget("kms", f"({r['name']})", purpose, r["name"], problem))
    # The record lists resources in registration order, which the SDK does not fix: sort.
    keys.sort(key=lambda k: k.name)
    namespaces = set(config["tenants"])
    for access in vault_layout(list(config["tenants"])).access:
        if access.namespace in namespaces:
            keys.append(KeyTarget("vault", access.transit_key, access.namespace, "vault_layout"))
    if not keys:
        raise OffboardInputError(f"the record of stack {record.get('stack')!r} names no key")
    return OffboardPlan(
        tenant=tenant,
        stack=str(record["stack"]),
        region=region or str(config["region"]),
        zone=zone.name,
        deletion_window_days=window,
        transit_mount=TRANSIT_PATH,
        record_fingerprint=str(record.get("fingerprint", {}).get("digest", "")),
        keys=tuple(keys),
    )


def plan_offboarding(
    name: str,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    region: str | None = None,
) -> OffboardPlan:
    """Resolve the tenant's stack and read (or synthesize) its record into a plan.

    Raises:
        OffboardInputError: As :func:`resolve_tenant` and :func:`plan_from_record`, or the
            stack cannot be synthesized.
    """
    stack = resolve_tenant(name, stacks_dir)
    try:
        record = fresh_record(stack, stacks_dir, build_dir).record
    except SynthError as exc:
        raise OffboardInputError(f"{stack}: {exc}", [str(p) for p in exc.problems]) from None
    return plan_from_record(name, record, region)


# ------------------------------------------------------------------------------------ shred


def _local_user() -> str:
    """The operating-system user running the command ('unknown' when it has none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container uid without a passwd entry or LOGNAME
        return "unknown"


def shred_plan(
    plan: OffboardPlan,
    shredders: Mapping[str, KeyShredder],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Certificate:
    """Shred every key of ``plan`` and return the (unwritten) certificate.

    Every service's identity and every key's state are read first: an unreachable service or
    missing credentials raise :class:`ServiceUnavailableError` before any key was changed.
    Then each key is shredded; a refusal is recorded on its key and the others go on.
    """
    started = now()
    services = sorted({k.service for k in plan.keys})
    who = {"user": _local_user(), "host": socket.gethostname()}
    for service in services:
        who[service] = shredders[service].identity()
    observed = {k: shredders[k.service].observe(k.name) for k in plan.keys if k.problem is None}
    records: list[KeyRecord] = []
    for key in plan.keys:
        if key.problem is not None:
            records.append(
                KeyRecord(
                    service=key.service,
                    name=key.name,
                    purpose=key.purpose,
                    key_id=None,
                    arn=None,
                    state_before="unknown",
                    state_after="unknown",
                    outcome="refused",
                    scheduled_deletion=None,
                    detail=key.problem,
                )
            )
            continue
        before = observed[key]
        done = shredders[key.service].shred(key.name, before, plan.deletion_window_days)
        records.append(
            KeyRecord(
                service=key.service,
                name=key.name,
                purpose=key.purpose,
                key_id=before.key_id,
                arn=before.arn,
                state_before=before.state,
                state_after=done.state_after,
                outcome=done.outcome,
                scheduled_deletion=done.deletion_date,
                detail="; ".join(d for d in (done.detail, before.detail) if d),
            )
        )
    refused = [r.name for r in records if r.outcome == "refused"]
    body = {
        "kind": CERTIFICATE_KIND,
        "version": CERTIFICATE_VERSION,
        "tenant": plan.tenant,
        "stack": plan.stack,
        "zone": plan.zone,
        "region": plan.region,
        "record_fingerprint": plan.record_fingerprint,
        "deletion_window_days": plan.deletion_window_days,
        "transit_mount": plan.transit_mount,
        "who": who,
        "started_at": iso(started),
        "finished_at": iso(now()),
        "outcome": "partial" if refused else "shredded",
        "refused": refused,
        "keys": [asdict(r) for r in records],
    }
    return Certificate(body)


def offboard(
    name: str,
    shredders: Mapping[str, KeyShredder] | Callable[[OffboardPlan], Mapping[str, KeyShredder]],
    *,
    stacks_dir: Path = STACKS,
    build_dir: Path = BUILD,
    region: str | None = None,
) -> Certificate:
    """Plan, shred and write the certificate of tenant ``name``: the whole command in one call.

    ``shredders`` is a mapping by service, or a function of the plan that builds it (the CLI's
    :func:`default_shredders`, which needs the plan's region and mount).

    Raises:
        OffboardInputError: The tenant cannot be offboarded as asked; nothing changed.
        ServiceUnavailableError: A key service is unreachable or refuses the credentials;
            nothing changed.
        OSError: The certificate cannot be written (the keys are shredded by then).
    """
    plan = plan_offboarding(name, stacks_dir, build_dir, region)
    services = shredders(plan) if callable(shredders) else shredders
    certificate = shred_plan(plan, services)
    certificate = write_certificate(certificate, build_dir)
    record(certificate)
    return certificate


def record(certificate: Certificate) -> dict[str, Any]:
    """Append ``tenant.offboarded`` to the lifecycle log: the certificate by path and digest,
    the outcome and the count of keys per outcome.

    Raises:
        AuditError: The lifecycle log cannot be written (the keys are shredded by then).
    """
    from pipelines.audit import log as audit

    body = certificate.body
    counts: dict[str, int] = {}
    for key in body["keys"]:
        counts[key["outcome"]] = counts.get(key["outcome"], 0) + 1
    outputs = {"certificate": audit.file_ref(certificate.path)} if certificate.path else {}
    return audit.append(
        "tenant.offboarded",
        str(body["tenant"]),
        outputs=outputs,
        details={
            "stack": str(body["stack"]),
            "outcome": str(body["outcome"]),
            "certificate_sha256": certificate.sha256,
            **{f"keys_{name.replace('-', '_')}": n for name, n in sorted(counts.items())},
        },
    )


def default_shredders(plan: OffboardPlan) -> dict[str, KeyShredder]:
    """KMS through boto3's credential chain in the plan's region; Vault from ``VAULT_ADDR``.

    Raises:
        ServiceUnavailableError: ``VAULT_ADDR`` or the Vault token is missing.
    """
    from infra.tenants.shredders import kms_shredder, vault_shredder

    return {"kms": kms_shredder(plan.region), "vault": vault_shredder(plan.transit_mount)}


# ------------------------------------------------------------------------------ certificate


def certificate_folder(build_dir: Path = BUILD) -> Path:
    """Where certificates are written: ``build/offboarding/``."""
    return build_dir / "offboarding"


def write_certificate(certificate: Certificate, build_dir: Path = BUILD) -> Certificate:
    """Write ``<tenant>-<UTC time>.json`` (mode 0600, never over an existing file) and return
    the certificate with its path."""
    folder = certificate_folder(build_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = certificate.body["finished_at"].replace("-", "").replace(":", "")
    data = (json.dumps(certificate.document(), indent=2, sort_keys=True) + "\n").encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(100):  # two runs in one second get -1, -2...
        suffix = f"-{attempt}" if attempt else ""
        path = folder / f"{certificate.body['tenant']}-{stamp}{suffix}.json"
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, 0o600)  # whatever the umask left
            out.write(data)
            out.flush()
            os.fsync(fd)
        return Certificate(certificate.body, path)
    raise FileExistsError(f"{folder}: no free certificate name for {certificate.body['tenant']}")


__all__ = [
    "Certificate",
    "KeyRecord",
    "KeyTarget",
    "OffboardInputError",
    "OffboardPlan",
    "ServiceUnavailableError",
    "canonical",
    "default_shredders",
    "known_tenants",
    "offboard",
    "plan_from_record",
    "plan_offboarding",
    "resolve_tenant",
    "shred_plan",
    "verify_certificate",
    "write_certificate",
]
