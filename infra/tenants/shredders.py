"""The two key services a tenant's data dies with: KMS (scheduled deletion) and Vault transit.

Each shredder does three things, always in this order: ``identity()`` (who is acting, and the
proof that the service answers with these credentials), ``observe(name)`` for every key before
anything changes, then ``shred(name, observed)``. An unreachable service or missing credentials
raise :class:`ServiceUnavailableError` during the first two steps, before any key was touched;
once shredding has begun, a failure is the refusal of that one key (``Shredded.outcome ==
"refused"``), so the other keys are still shredded and the refusal is named.

Idempotent by construction: a KMS key already pending deletion is reported as
``already-pending`` with its date, and a key (or alias) the service no longer knows as
``absent``; neither is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Outcome = Literal["scheduled", "already-pending", "deleted", "absent", "refused"]
"""What happened to one key: ``scheduled`` (KMS deletion scheduled now), ``already-pending``
(KMS deletion scheduled earlier), ``deleted`` (Vault transit key deleted now), ``absent`` (the
service does not know it: already deleted, or never created), ``refused`` (not shredded)."""

PENDING = ("PendingDeletion", "PendingReplicaDeletion")
"""KMS key states of a key whose deletion is already scheduled."""
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
"""AWS error codes that mean the credentials are bad, not that one key refuses."""


class ServiceUnavailableError(Exception):
    """A key service cannot be reached or rejects the credentials; nothing was changed."""


@dataclass(frozen=True)
class Observed:
    """A key as its service reported it before anything was changed."""

    state: str
    """The service's state: a KMS ``KeyState`` (``Enabled``, ``PendingDeletion``...), ``present``
    for a Vault key, ``absent`` when the service does not know it, ``unknown`` when refused."""
    key_id: str | None = None
    """KMS key id (the alias resolved), or the Vault key name."""
    arn: str | None = None
    """KMS key ARN; None for Vault."""
    deletion_date: str | None = None
    """UTC ISO time of an already scheduled KMS deletion."""
    detail: str = ""
    """Anything else worth certifying (a Vault key's latest version)."""
    refusal: str | None = None
    """Why the key could not be read (access denied), or None."""


@dataclass(frozen=True)
class Shredded:
    """What shredding one key did."""

    outcome: Outcome
    """See :data:`Outcome`."""
    state_after: str
    """The state the service reports (or implies) afterwards."""
    deletion_date: str | None = None
    """UTC ISO time a KMS key will be deleted; None for Vault (deleted at once) and refusals."""
    detail: str = ""
    """The service's reason for a refusal, or a note on the outcome."""


class KeyShredder(Protocol):
    """One key service, as :func:`infra.tenants.offboard.shred_plan` drives it."""

    service: str
    """``kms`` or ``vault``."""

    def identity(self) -> str:
        """Who the credentials are; raises :class:`ServiceUnavailableError`."""
        ...

    def observe(self, name: str) -> Observed:
        """The key's state now; raises :class:`ServiceUnavailableError`."""
        ...

    def shred(self, name: str, observed: Observed, window_days: int) -> Shredded:
        """Shred the key (never raises for a refusal: it is the outcome)."""
        ...


def iso(moment: datetime) -> str:
    """``moment`` as a UTC ISO time ending in ``Z``, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aws_error(exc: Exception) -> tuple[str, str]:
    """(code, message) of a botocore ``ClientError``."""
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code", type(exc).__name__)), str(error.get("Message", exc))


class KmsShredder:
    """KMS keys found by alias (``describe_key``), deleted with ``schedule_key_deletion``."""

    service = "kms"

    def __init__(self, kms: Any, sts: Any, region: str) -> None:
        self.kms, self.sts, self.region = kms, sts, region

    def _unavailable(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"AWS KMS in {self.region}: {type(exc).__name__}: {exc} (set AWS credentials for "
            "the tenant's account: AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )

    def identity(self) -> str:
        """The caller's ARN (``sts get_caller_identity``)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return str(self.sts.get_caller_identity()["Arn"])
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable(exc) from None

    def observe(self, name: str) -> Observed:
        """``describe_key`` of the alias: its key id, ARN, state and any deletion date."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            meta = self.kms.describe_key(KeyId=name)["KeyMetadata"]
        except ClientError as exc:
            code, message = _aws_error(exc)
            if code == "NotFoundException":
                return Observed("absent", detail=f"alias not found: {message}")
            if code in _CREDENTIAL_CODES:
                raise self._unavailable(exc) from None
            return Observed("unknown", refusal=f"{code}: {message}")
        except BotoCoreError as exc:
            raise self._unavailable(exc) from None
        date = meta.get("DeletionDate")
        return Observed(
            state=str(meta.get("KeyState", "unknown")),
            key_id=str(meta["KeyId"]),
            arn=str(meta.get("Arn", "")) or None,
            deletion_date=iso(date) if isinstance(date, datetime) else None,
        )

    def shred(self, name: str, observed: Observed, window_days: int) -> Shredded:
        """Schedule the deletion of the alias's key with ``window_days``, unless already done."""
        from botocore.exceptions import BotoCoreError, ClientError

        if observed.refusal is not None:
            return Shredded("refused", observed.state, detail=observed.refusal)
        if observed.state == "absent":
            return Shredded("absent", "absent", detail="no such alias: deleted, or never created")
        if observed.state in PENDING:
            return Shredded(
                "already-pending", observed.state, observed.deletion_date, "scheduled earlier"
            )
        try:
            answer = self.kms.schedule_key_deletion(
                KeyId=observed.key_id, PendingWindowInDays=window_days
            )
        except ClientError as exc:
            code, message = _aws_error(exc)
            return Shredded("refused", observed.state, detail=f"{code}: {message}")
        except BotoCoreError as exc:
            return Shredded("refused", observed.state, detail=f"{type(exc).__name__}: {exc}")
        date = answer.get("DeletionDate")
        return Shredded(
            "scheduled",
            str(answer.get("KeyState") or "PendingDeletion"),
            iso(date) if isinstance(date, datetime) else None,
            f"deletion in {window_days} days",
        )


def vault_address() -> str | None:
    """``VAULT_ADDR``, else OpenBao's ``BAO_ADDR`` (as the artifact backend reads them)."""
    return os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR") or None


class VaultShredder:
    """Vault/OpenBao transit keys: ``deletion_allowed`` set, then the key deleted."""

    service = "vault"

    def __init__(self, client: Any, mount: str, address: str) -> None:
        self.client, self.mount, self.address = client, mount, address

    def _unavailable(self, what: str, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"Vault at {self.address}: {what}: {type(exc).__name__}: {_vault_text(exc)} "
            "(set VAULT_ADDR and VAULT_TOKEN for the tenant's Vault)"
        )

    def identity(self) -> str:
        """The token's display name, accessor and policies (``token/lookup-self``, which Vault's
        default policy allows)."""
        import hvac.exceptions
        import requests.exceptions

        try:
            data = self.client.auth.token.lookup_self()["data"]
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            raise self._unavailable("token lookup", exc) from None
        # The accessor names the token in Vault's audit log without being able to use it.
        policies = ", ".join(str(p) for p in data.get("policies") or []) or "none"
        return (
            f"{data.get('display_name') or 'token'} (accessor {data.get('accessor') or '?'}, "
            f"policies {policies})"
        )

    def observe(self, name: str) -> Observed:
        """``transit/keys/<name>``: present with its latest version, or absent."""
        import hvac.exceptions
        import requests.exceptions

        try:
            data = self.client.secrets.transit.read_key(name=name, mount_point=self.mount)["data"]
        except hvac.exceptions.InvalidPath:
            return Observed("absent", key_id=name, detail="no such transit key")
        except requests.exceptions.RequestException as exc:
            raise self._unavailable(f"reading transit key {name!r}", exc) from None
        except hvac.exceptions.VaultError as exc:
            return Observed("unknown", key_id=name, refusal=_vault_text(exc))
        version = data.get("latest_version")
        return Observed("present", key_id=name, detail=f"latest version {version}")

    def shred(self, name: str, observed: Observed, window_days: int) -> Shredded:
        """Allow deletion, delete, then read again: only a key Vault no longer has is deleted.

        ``window_days`` does not apply: transit deletion is immediate and final.
        """
        import hvac.exceptions
        import requests.exceptions

        if observed.refusal is not None:
            return Shredded("refused", observed.state, detail=observed.refusal)
        if observed.state == "absent":
            return Shredded("absent", "absent", detail="no such transit key: deleted, or never")
        transit = self.client.secrets.transit
        try:
            transit.update_key_configuration(
                name=name, deletion_allowed=True, mount_point=self.mount
            )
            transit.delete_key(name=name, mount_point=self.mount)
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            return Shredded("refused", observed.state, detail=_vault_text(exc))
        try:
            transit.read_key(name=name, mount_point=self.mount)
        except hvac.exceptions.InvalidPath:
            return Shredded("deleted", "absent", detail="deleted; read back: not found")
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as exc:
            return Shredded("refused", "unknown", detail=f"deleted, read back failed: {exc}")
        return Shredded("refused", "present", detail="still present after the delete call")


def _vault_text(exc: Exception) -> str:
    """hvac's message on one line, without the URL it appends (``..., on get http://...``) and
    without Vault's ``1 error occurred:`` list framing."""
    text = str(exc).split(", on ")[0]
    text = re.sub(r"^\s*\d+ errors? occurred:\s*", "", text)
    items = [i.strip() for i in re.split(r"(?:^|\n)\s*\*\s*", text) if i.strip()]
    return "; ".join(" ".join(i.split()) for i in items) or type(exc).__name__


def kms_shredder(region: str) -> KmsShredder:
    """A :class:`KmsShredder` with boto3's default credential chain, in ``region``.

    A session of its own, not boto3's module-wide default one: that caches the credentials it
    first resolved, so the keys would be shredded under whatever identity an earlier caller in
    the process found, not the one the environment names now.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region, connect_timeout=10, read_timeout=30, retries={"max_attempts": 3}
    )
    session = boto3.session.Session()
    return KmsShredder(
        session.client("kms", config=config), session.client("sts", config=config), region
    )


def vault_shredder(mount: str) -> VaultShredder:
    """A :class:`VaultShredder` for ``VAULT_ADDR`` with the client the artifact backend builds.

    Raises:
        ServiceUnavailableError: No ``VAULT_ADDR`` (or ``BAO_ADDR``), or no token.
    """
    from pipelines.artifacts.errors import KeyServiceError
    from pipelines.artifacts.keys.vault import VaultTransitKeys

    address = vault_address()
    if address is None:
        raise ServiceUnavailableError(
            "VAULT_ADDR is not set: the tenant's Vault transit keys cannot be reached "
            "(set VAULT_ADDR and VAULT_TOKEN)"
        )
    try:
        # The backend's client: same TLS, namespace and token handling as `sovml artifact`.
        client = VaultTransitKeys(mount_point=mount, url=address, timeout=15.0).client
    except KeyServiceError as exc:
        raise ServiceUnavailableError(f"Vault at {address}: {exc}") from None
    return VaultShredder(client, mount, address)
