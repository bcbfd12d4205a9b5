"""Resolve inventory digests from the registries and write the lock file.

Images: the Docker Registry HTTP API v2 (``HEAD /v2/<repo>/manifests/<tag>`` with the manifest
media types in ``Accept``; on 401 the anonymous bearer-token flow the ``WWW-Authenticate``
challenge names) answers ``Docker-Content-Digest``. Charts from an HTTP chart repository: the
``digest`` its ``index.yaml`` records for that version (the sha256 of the packaged chart). From
the zone's own ECR mirror: ``describe_images`` by tag. A digest only ever comes from one of these
answers; an entry that cannot be reached stays unresolved and is named, never guessed.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from policies.inventory import DIGEST, LOCK_FILE, Entry, Pin

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
"""What a HEAD asks for: the multi-architecture index first, so the digest is the tag's own."""
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT_S = 15.0
"""Per request; an unreachable registry fails the entry, not the whole run."""
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class ResolveError(Exception):
    """One entry could not be resolved (unreachable, refused, or no such tag)."""


@dataclass(frozen=True)
class Outcome:
    """What resolving one entry gave: a pin, or why not."""

    entry: Entry
    """The inventory entry."""
    pin: Pin | None
    """The digest and its source, when resolved."""
    error: str = ""
    """Why it is unresolved (empty when pinned)."""


def split_image(upstream: str) -> tuple[str, str]:
    """``(registry host, repository)`` of an image name, Docker's way (``redis`` is
    ``registry-1.docker.io``/``library/redis``)."""
    first, _, rest = upstream.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, upstream if rest else f"library/{upstream}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Opener = Callable[[urllib.request.Request], Any]


def _open(request: urllib.request.Request) -> Any:
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _token(challenge: str, opener: Opener) -> str:
    """An anonymous pull token from the realm a ``WWW-Authenticate: Bearer`` challenge names."""
    if not challenge.lower().startswith("bearer "):
        raise ResolveError(f"registry wants {challenge.split(' ', 1)[0] or 'unknown'} auth")
    params = dict(_CHALLENGE.findall(challenge))
    realm = params.pop("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise ResolveError("registry's token challenge names no realm")
    url = f"{realm}?{urllib.parse.urlencode(params)}"
    try:
        with opener(urllib.request.Request(url)) as response:
            body = json.loads(response.read(1 << 20))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ResolveError(f"token service {realm}: {exc}") from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ResolveError(f"token service {realm} gave no token")
    return token


def image_digest(entry: Entry, base_url: str | None = None, opener: Opener = _open) -> Pin:
    """The digest of ``entry``'s tag from its registry (``base_url`` overrides ``https://host``)."""
    host, repository = split_image(entry.upstream)
    base = (base_url or f"https://{host}").rstrip("/")
    url = f"{base}/v2/{repository}/manifests/{entry.version}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    for attempt in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with opener(request) as response:
                digest = response.headers.get("Docker-Content-Digest", "")
            break
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
            if exc.code == 401 and attempt == 0 and challenge:
                headers["Authorization"] = f"Bearer {_token(challenge, opener)}"
                continue
            raise ResolveError(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ResolveError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if not DIGEST.fullmatch(digest):
        raise ResolveError(f"{url}: no sha256 Docker-Content-Digest in the answer")
    return Pin(entry.id, digest, url, _now())


def chart_digest(entry: Entry, base_url: str | None = None, opener: Opener = _open) -> Pin:
    """The digest the chart repository's ``index.yaml`` records for ``entry``'s version."""
    url = f"{(base_url or entry.upstream).rstrip('/')}/index.yaml"
    try:
        with opener(urllib.request.Request(url)) as response:
            index = yaml.safe_load(response.read(64 << 20))
    except urllib.error.HTTPError as exc:
        raise ResolveError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ResolveError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    except yaml.YAMLError:
        raise ResolveError(f"{url}: not a chart repository index") from None
    versions = (
        (index or {}).get("entries", {}).get(entry.chart) if isinstance(index, dict) else None
    )
    for found in versions or ():
        if isinstance(found, dict) and str(found.get("version")) == entry.version:
            digest = f"sha256:{found.get('digest', '')}"
            if not DIGEST.fullmatch(digest):
                raise ResolveError(f"{url}: {entry.chart} {entry.version} has no sha256 digest")
            return Pin(entry.id, digest, url, _now())
    raise ResolveError(f"{url}: no {entry.chart} {entry.version}")


def ecr_digest(entry: Entry, client: Any) -> Pin:
    """The digest of ``entry`` in the zone's ECR mirror (``client``: a boto3 ECR client)."""
    try:
        answer = client.describe_images(
            repositoryName=entry.mirror, imageIds=[{"imageTag": entry.version}]
        )
    except Exception as exc:  # botocore's errors: no repository, no tag, no credentials
        raise ResolveError(f"ECR {entry.mirror}:{entry.version}: {exc}") from None
    details = answer.get("imageDetails") or []
    digest = details[0].get("imageDigest", "") if details else ""
    if not DIGEST.fullmatch(digest):
        raise ResolveError(f"ECR {entry.mirror}:{entry.version}: no digest")
    registry = details[0].get("registryId", "")
    source = f"ecr:{registry}/{entry.mirror}:{entry.version} (DescribeImages)"
    return Pin(entry.id, digest, source, _now())


def resolve(
    entries: Iterable[Entry],
    endpoints: Mapping[str, str] | None = None,
    ecr: Any = None,
    opener: Opener = _open,
) -> list[Outcome]:
    """Resolve every entry: from ``ecr`` (a client) when given, else upstream.

    ``endpoints`` maps a registry host or chart repository URL to the base URL to ask instead
    (a registry reachable at another address).
    """
    endpoints = endpoints or {}
    out = []
    for entry in entries:
        try:
            if ecr is not None:
                pin = ecr_digest(entry, ecr)
            elif entry.kind == "chart":
                pin = chart_digest(entry, endpoints.get(entry.upstream), opener)
            else:
                pin = image_digest(entry, endpoints.get(split_image(entry.upstream)[0]), opener)
            out.append(Outcome(entry, pin))
        except ResolveError as exc:
            out.append(Outcome(entry, None, str(exc)))
    return out


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def lock_text(pins: Mapping[str, Pin], order: Iterable[str]) -> str:
    """The lock file's text: one ``[[pin]]`` per pinned id, in inventory order."""
    lines = [
        "# Digests of the inventory's images and charts (policies/inventory.toml), each with the",
        "# source that states it. Written by `sovml images lock`; review and commit it. An entry",
        "# absent here is unresolved: never add a digest that no registry or document states.",
    ]
    for ident in order:
        pin = pins.get(ident)
        if pin is None:
            continue
        lines += [
            "",
            "[[pin]]",
            f"id = {_toml_string(pin.id)}",
            f"digest = {_toml_string(pin.digest)}",
            f"source = {_toml_string(pin.source)}",
            f"resolved_at = {_toml_string(pin.resolved_at)}",
        ]
    return "\n".join(lines) + "\n"


def write_lock(pins: Mapping[str, Pin], order: Iterable[str], path: Path = LOCK_FILE) -> None:
    """Write the lock atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(lock_text(pins, order), encoding="utf-8")
    tmp.replace(path)
