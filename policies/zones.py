"""Residency zones as data: which AWS regions a stack in each zone may use.

One source of truth for the question "is this region inside the stack's residency zone?". Config
validation, the policy rules and the synth mocks all read it, so adding a zone is a data change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """An AWS region that a residency zone admits."""

    name: str
    """AWS region code, e.g. ``me-central-1``."""
    availability_zones: tuple[str, ...]
    """Availability zones in the order the network component uses them."""
    partition: str = "aws"
    """AWS partition of the region (``aws``, ``aws-cn``, ``aws-us-gov``)."""


@dataclass(frozen=True)
class ResidencyZone:
    """A data-residency zone: data at rest and its copies stay within these regions."""

    name: str
    """Short zone id used in stack config (``residencyZone``)."""
    description: str
    """Who this zone is for, in words."""
    regions: tuple[Region, ...]
    """Regions inside the zone; the first is the zone's default."""
    timezone: str = "UTC"
    """IANA time zone for schedules in the zone (serving warm hours), e.g. ``Asia/Dubai``."""

    @property
    def region_names(self) -> tuple[str, ...]:
        """Region codes inside the zone."""
        return tuple(r.name for r in self.regions)

    @property
    def default_region(self) -> str:
        """The region a new stack in this zone gets when none is given."""
        return self.regions[0].name


def _region(name: str, zones: str = "abc") -> Region:
    """A region whose availability zones are the region name plus each letter of ``zones``."""
    return Region(name, tuple(f"{name}{z}" for z in zones))


ZONES: dict[str, ResidencyZone] = {
    zone.name: zone
    for zone in (
        ResidencyZone(
            "uae",
            "United Arab Emirates (UAE data-protection law, TDRA cloud guidance)",
            (_region("me-central-1"),),
            "Asia/Dubai",
        ),
        ResidencyZone(
            "bahrain", "Kingdom of Bahrain (PDPL)", (_region("me-south-1"),), "Asia/Bahrain"
        ),
        ResidencyZone(
            "ksa", "Kingdom of Saudi Arabia (PDPL, NCA ECC)", (_region("me-west-1"),), "Asia/Riyadh"
        ),
        ResidencyZone(
            "eu",
            "European Union (GDPR); several regions, all inside the EU",
            tuple(_region(r) for r in ("eu-central-1", "eu-west-1", "eu-west-3", "eu-north-1")),
            "Europe/Brussels",
        ),
    )
}


def zone_of_region(region: str) -> ResidencyZone | None:
    """Return the zone that contains ``region``, or None when no zone does."""
    for zone in ZONES.values():
        if region in zone.region_names:
            return zone
    return None


def region_info(region: str) -> Region | None:
    """Return the known facts about ``region`` (AZs, partition), or None if no zone lists it."""
    for zone in ZONES.values():
        for candidate in zone.regions:
            if candidate.name == region:
                return candidate
    return None


def region_in_zone(region: str, zone: str) -> bool:
    """True when ``region`` lies inside residency zone ``zone``; unknown zones admit nothing."""
    found = ZONES.get(zone)
    return found is not None and region in found.region_names


# --------------------------------------------------------------------------------------------
# Regional audit and detection services: which the stack's region offers
# --------------------------------------------------------------------------------------------

OFFERED, UNKNOWN = "offered", "unknown"
"""What the table knows of a service in a region: offered there, or not confirmed either way (a
region missing from a service's source page is ``unknown`` too: absence from a page is no proof)."""
AUDIT_SERVICE_SOURCES: dict[str, str] = {
    "cloudtrail": "https://docs.aws.amazon.com/general/latest/gr/ct.html",
    "guardduty": "https://docs.aws.amazon.com/general/latest/gr/guardduty.html",
    "config": "https://docs.aws.amazon.com/general/latest/gr/awsconfig.html",
    "securityhub": "https://docs.aws.amazon.com/general/latest/gr/sechub.html",
}
"""Each service's regions, as the AWS General Reference lists its regional endpoints; checked for
every zone region against that page and against the AWS SDK's endpoint data (botocore 1.44.5
``endpoints.json``, partition ``aws``) on 2026-12-05."""
_CONFIRMED = ("cloudtrail", "guardduty", "config", "securityhub")
SERVICE_AVAILABILITY: dict[str, dict[str, str]] = {
    **{
        region: dict.fromkeys(_CONFIRMED, OFFERED)
        for region in (
            "me-central-1",
            "me-south-1",
            "eu-central-1",
            "eu-west-1",
            "eu-west-3",
            "eu-north-1",
        )
    },
    # The ksa zone's region is in no AWS source consulted (no endpoint page, not in the SDK's
    # region list): nothing is known to be offered there, so nothing is assumed.
    "me-west-1": dict.fromkeys(_CONFIRMED, UNKNOWN),
}
"""Region -> service -> ``offered`` or ``unknown``, for every region a zone lists (a test keeps
the two tables in step). The audit component creates a detection service only where it is
offered, and the gate (SOV-AUD-003) requires it exactly there."""


def service_availability(region: str, service: str) -> str:
    """``offered`` or ``unknown`` for ``service`` in ``region``; unknown when either is unlisted."""
    return SERVICE_AVAILABILITY.get(region, {}).get(service, UNKNOWN)
