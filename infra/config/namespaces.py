"""Which keys a stack file may hold, and which of them may (or must) hold a secret.

A stack's config keys are ``namespace:name``. Allowed are the ``sovereign-ml`` keys of ``KEYS``
and a short, explicit list of provider keys (``FOREIGN_KEYS``): ``aws:region`` (the stack's
region, required) and the settings of the AWS, Kubernetes and Vault providers that operators set
in a stack file. Anything else is an error with the closest allowed key as a suggestion, so a
misspelled namespace (``sovereign_ml:``, ``Sovereign-ML:``, ``aws:regoin``) is never silently
ignored.

Credentials never stand in a stack file in plain text: a key named like key material
(``redaction.is_secret_name``) must hold a ``secure:`` value (``pulumi config set --secret``),
and a value that looks like a credential is an error under any key. A ``sovereign-ml`` key holds
no secret, so a ``secure:`` value there is an error too (sovml must read the value to check it).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from infra.config.keys import KEYS_BY_NAME, PROJECT, REGION_KEY
from infra.config.problems import OMITTED, qualified
from infra.config.reader import Reader
from infra.config.redaction import credential_kind, is_secret_name, quoted, shown_name


@dataclass(frozen=True)
class ForeignKey:
    """A provider's config key that a stack file may set."""

    name: str
    """Qualified key, e.g. ``aws:profile``."""
    secret: bool
    """Whether it is a credential: then only a ``secure:`` value is accepted."""
    env: str = ""
    """The environment variable that is the better home of a credential (``AWS_SECRET_...``)."""


FOREIGN_KEYS: dict[str, ForeignKey] = {
    k.name: k
    for k in (
        ForeignKey(REGION_KEY, secret=False),
        ForeignKey("aws:profile", secret=False),
        ForeignKey("aws:accessKey", secret=True, env="AWS_ACCESS_KEY_ID"),
        ForeignKey("aws:secretKey", secret=True, env="AWS_SECRET_ACCESS_KEY"),
        ForeignKey("aws:token", secret=True, env="AWS_SESSION_TOKEN"),
        ForeignKey("kubernetes:context", secret=False),
        ForeignKey("kubernetes:kubeconfig", secret=True, env="KUBECONFIG"),
        ForeignKey("vault:token", secret=True, env="VAULT_TOKEN"),
    )
}
"""Every provider key a stack file may hold."""

NAMESPACES = (PROJECT, "aws", "kubernetes", "vault")
"""The config namespaces a stack file may use."""

REDIRECTS = {
    "aws:allowedAccountIds": f"{PROJECT}:allowedAccountIds",
    "vault:address": f"{PROJECT}:vaultAddress",
}
"""Provider keys the program takes from its own namespace instead (its providers are explicit)."""

PLAIN_SETTING = re.compile(r"[\w.@+/-]{1,128}")
"""A non-secret provider setting (a profile or context name)."""


def _squashed(namespace: str) -> str:
    """A namespace without case and punctuation: ``Sovereign_ML`` -> ``sovereignml``."""
    return re.sub(r"[^a-z0-9]", "", namespace.lower())


_BY_SQUASHED = {_squashed(n): n for n in NAMESPACES}


def known_keys() -> list[str]:
    """Every key a stack file may hold, qualified."""
    return [qualified(name) for name in KEYS_BY_NAME] + list(FOREIGN_KEYS)


def suggestion(key: str) -> str | None:
    """The allowed key ``key`` most likely meant, or None.

    The namespace is repaired first (``sovereign_ml`` -> ``sovereign-ml``) and the name then
    compared with that namespace's names only (a shared prefix would make every key look alike).
    """
    if key in REDIRECTS:
        return REDIRECTS[key]
    known = known_keys()
    namespace, _, name = key.partition(":")
    fixed_ns = _BY_SQUASHED.get(_squashed(namespace))
    if fixed_ns is not None:
        names = [k.partition(":")[2] for k in known if k.startswith(f"{fixed_ns}:")]
        close = difflib.get_close_matches(name, names, n=1)
        return f"{fixed_ns}:{close[0]}" if close else None
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    if close:
        return close[0]
    bare = {k.partition(":")[2]: k for k in known}
    close = difflib.get_close_matches(name, list(bare), n=1, cutoff=0.75)
    return bare[close[0]] if close else None


def _unknown(key: str) -> str:
    """Why ``key`` is refused, with the closest allowed key."""
    namespace, _, _name = key.partition(":")
    guess = suggestion(key)
    hint = f"did you mean {guess}?" if guess else "see Pulumi.yaml for the keys"
    if key in REDIRECTS:
        return f"not read by the program (its providers are explicit); use {guess} instead"
    if namespace not in NAMESPACES:
        return (
            f"an unknown namespace {quoted(namespace)} "
            f"(allowed: {', '.join(NAMESPACES)}); {hint} "
            "A key there would be silently ignored."
        )
    return f"an unknown key; {hint}"


def plain_credential(key: str, env: str = "") -> str:
    """What to do about a credential written in plain text under ``key``."""
    better = f", or set {env} in the environment instead" if env else ""
    return (
        "a credential in plain text: delete the line, rotate the credential (the file may be in "
        f"version control already), then run `pulumi config set --secret {shown_name(key)}`"
        f"{better}"
    )


def check_keys(r: Reader) -> None:
    """A problem for every key the stack may not hold, and for every plain-text credential.

    ``r.raw`` is keyed by bare name for ``sovereign-ml`` keys and ``namespace:name`` for others.
    """
    for name, value in r.raw.items():
        key = qualified(name)
        secure = key in r.secret_keys
        foreign = FOREIGN_KEYS.get(key)
        ours = ":" not in name
        if (ours and name not in KEYS_BY_NAME) or (not ours and foreign is None):
            r.problem(name, OMITTED if value is None else value, _unknown(key), conceal=True)
        credential = ours and name in KEYS_BY_NAME and KEYS_BY_NAME[name].secret
        if ours and secure and not credential:
            r.problem(
                name,
                value,
                f"a plain value: {shown_name(key)} holds no secret and sovml must read it to "
                f"check it; `pulumi config set {shown_name(key)} VALUE` (without --secret)",
                conceal=True,
            )
        if secure:
            continue
        # A flag such as ``skipCredentialsValidation: true`` is named like a secret but is none.
        named_secret = is_secret_name(key) and not isinstance(value, bool)
        named_secret = named_secret or (credential and value not in (None, ""))
        if (foreign is not None and foreign.secret) or named_secret:
            r.problem(
                name, value, plain_credential(key, foreign.env if foreign else ""), conceal=True
            )
        elif (kind := credential_kind(value)) is not None:
            r.problem(
                name,
                value,
                f"looks like {kind}; {plain_credential(key)}",
                conceal=True,
            )
        elif (
            foreign is not None
            and key != REGION_KEY
            and not (isinstance(value, str) and PLAIN_SETTING.fullmatch(value))
        ):
            r.problem(name, value, "a name: 1-128 letters, digits and _ . @ + / -")
