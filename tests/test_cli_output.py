"""What ``sovml`` prints: literal (no rich markup read from any value), secret-safe (a value that
might be a secret is masked with its length, also in files under build/), bounded (the first
``MAX_LISTED`` problems and a count), and never a traceback, whatever the stack file holds.

The fuzz tests build stack files from random bytes, random YAML and random key names and run
``config validate`` and ``synth`` in-process (typer's CliRunner) with deadlines; ``synth`` runs a
program that declares nothing (``tests/fixtures/empty_program``), so a stack file that happens
to be valid costs a fraction of a second, and writes under a temporary build folder.
"""

from __future__ import annotations

import string
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.app import app
from infra.cli.common import bounded_message
from infra.config.problems import MAX_LISTED
from infra.config.stackfile import ROOT

runner = CliRunner()
ENV = {"COLUMNS": "1000"}
EMPTY_PROGRAM = ROOT / "tests" / "fixtures" / "empty_program" / "__main__.py"
BASE = """\
config:
  aws:region: me-central-1
  sovereign-ml:owner: ml-platform
  sovereign-ml:costCenter: cc-4100-ml
  sovereign-ml:alertWebhookUrl: https://itsm.example.ae/alertmanager
  sovereign-ml:gatewayOidcIssuer: https://login.example.ae/realms/ml
  sovereign-ml:gatewayOidcJwksUri: https://login.example.ae/realms/ml/certs
"""


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=ENV)


def clean(result: Any, codes: tuple[int, ...] = (0, 2)) -> Any:
    """A result that ended with one of ``codes``, through ``typer.Exit``, without a traceback."""
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


# --------------------------------------------------------------------------------------------
# Literal output
# --------------------------------------------------------------------------------------------

MARKUP = ("[/]", "[secret]", "[bold]", "[red]x[/red]", ":warning:", "[link=http://x]y[/link]")


@pytest.mark.parametrize("text", MARKUP)
def test_markup_in_a_value_or_a_key_prints_as_itself(tmp_path: Path, text: str) -> None:
    stack = BASE + f'  sovereign-ml:tier: "{text}"\n  "sovereign-ml:{text}": 1\n'
    (tmp_path / "Pulumi.m.yaml").write_text(stack)
    for command in (("config", "validate"), ("synth",)):
        result = clean(invoke(*command, "m", "--stacks-dir", str(tmp_path)), (2,))
        assert f'"{text}"' in result.stderr, result.stderr  # the tier value, JSON-quoted
        assert f"sovereign-ml:{text}" in result.stderr, result.stderr  # the unknown key


def test_markup_in_tenant_arguments_prints_as_itself(tmp_path: Path) -> None:
    result = clean(invoke("tenant", "new", "[/]", "--stacks-dir", str(tmp_path)), (2,))
    assert "tenant [/]: not created" in result.stderr and "tenant name '[/]'" in result.stderr
    result = clean(
        invoke("tenant", "new", "acme", "--zone", "[bold]x", "--stacks-dir", str(tmp_path)), (2,)
    )
    assert "zone '[bold]x'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_command_module_formats_markup_into_output() -> None:
    """The CLI styles with Text only: no ``[style]...[/]`` literal and no ``markup=True``."""
    offenders = []
    for path in sorted((ROOT / "infra" / "cli").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if ("[/]" in code and "``" not in line) or "markup=True" in code or "escape(" in code:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


# --------------------------------------------------------------------------------------------
# Secret-safe output
# --------------------------------------------------------------------------------------------

SECRETS = {
    "plain-secret-key": ("aws:secretKey", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "plain-vault-token": ("vault:token", "hvs.CAESIB4xq2Tq0eJz8v9wLmNoPQRsTuVwXyZ0123"),
    "password-under-unknown-key": ("sovereign-ml:dbPassword", "Tr0ub4dor-horse-9"),
    "innocent-name-unknown-key": ("sovereign-ml:notes", "correct-battery-staple-42"),
    "password-in-vault-url": (
        "sovereign-ml:vaultAddress",
        "https://admin:Zq8pWl2mXc7v@vault.example:8200",
    ),
    "access-key-as-owner": ("sovereign-ml:costCenter", "AKIAIOSFODNN7EXAMPLE"),
    "jwt-in-a-list": (
        "sovereign-ml:tenants",
        "[eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlLXBhcnQ]",
    ),
    "kubeconfig": ("kubernetes:kubeconfig", '"apiVersion: v1\\nclient-key-data: S2V5TWF0ZXJpYWw="'),
    "malformed-secure": ("aws:secretKey", "{secure: v1:Q2lwaGVydGV4dA==, x: 1}"),
    "secret-as-a-key": ("sovereign-ml:AKIAIOSFODNN7EXAMPLF", "1"),
    "secret-on-a-syntax-error-line": (
        "aws:secretKey",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ: x",
    ),
}
"""(key, value as written in YAML) pairs whose value (or key) must never be echoed."""


def secret_of(key: str, value: str) -> str:
    """The string that must not appear anywhere: the credential itself."""
    if key.startswith("sovereign-ml:AKIA"):
        return key.partition(":")[2]
    for token in ("wJalr", "hvs.", "Tr0ub", "correct-", "Zq8p", "AKIA", "eyJ", "S2V5", "Q2lw"):
        if token in value:
            start = value.index(token)
            return value[start : start + 16]
    raise AssertionError(value)


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("name", list(SECRETS))
def test_a_rejected_secret_is_never_echoed_nor_written(
    tmp_path: Path, build: Path, name: str
) -> None:
    key, value = SECRETS[name]
    # One costCenter line only: the credential replaces the base's value.
    text = (
        BASE.replace("  sovereign-ml:costCenter: cc-4100-ml\n", "") if "costCenter" in key else BASE
    )
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.leak.yaml").write_text(text + f"  {key}: {value}\n")
    secret = secret_of(key, value)
    where = ("--stacks-dir", str(tmp_path / "stacks"))
    outputs = [
        clean(invoke(*command, "leak", *where), (2,))
        for command in (("config", "validate"), ("synth",), ("check", "--no-checkov"))
    ]
    for result in outputs:
        assert secret not in result.output, result.output
    for path in files_under(build) + files_under(ROOT / "build" / "leak"):
        assert secret.encode() not in path.read_bytes(), path


def test_a_secure_secret_never_reaches_the_record(tmp_path: Path, build: Path) -> None:
    """A valid stack with an encrypted credential: its ciphertext stays out of build/."""
    ciphertext = "v1:AAABAKmF4Jg3Ve4bT0xZ8lAQ2lwaGVy"
    stack = BASE + f"  aws:secretKey:\n    secure: {ciphertext}\n"
    (tmp_path / "Pulumi.enc.yaml").write_text(stack)
    where = ("--stacks-dir", str(tmp_path), "--program", str(EMPTY_PROGRAM))
    clean(invoke("synth", "enc", *where), (0,))
    record = (build / "enc" / "resources.json").read_text()
    assert '"aws:secretKey"' in record and ciphertext not in record
    result = clean(invoke("check", "enc", "--no-checkov", *where), (0, 1))
    assert ciphertext not in result.output
    assert all(ciphertext.encode() not in p.read_bytes() for p in files_under(build))


def test_error_lines_mask_credentials_and_stay_bounded() -> None:
    message = bounded_message("cannot reach https://bob:Zq8pWl2mXc7v@vault:8200 " + "x" * 10_000)
    assert "Zq8pWl2mXc7v" not in message and "https://<redacted, " in message
    assert len(message) < 2_100 and message.endswith("characters in all)")


# --------------------------------------------------------------------------------------------
# Bounded output
# --------------------------------------------------------------------------------------------


def test_problems_beyond_the_first_fifty_are_counted(tmp_path: Path) -> None:
    bad_tenants = ", ".join(f"Bad_{i}" for i in range(600))
    (tmp_path / "Pulumi.many.yaml").write_text(BASE + f"  sovereign-ml:tenants: [{bad_tenants}]\n")
    for command in (("config", "validate"), ("synth",)):
        result = clean(invoke(*command, "many", "--stacks-dir", str(tmp_path)), (2,))
        rows = [line for line in result.stderr.splitlines() if line.startswith("│")]
        assert len(rows) == MAX_LISTED
        assert f"... and {600 - MAX_LISTED} more" in result.stderr
        assert len(result.output) < 20_000


def test_a_long_value_is_cut_with_its_length(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.long.yaml").write_text(BASE.replace("ml-platform", "Q" * 200_000))
    result = clean(invoke("config", "validate", "long", "--stacks-dir", str(tmp_path)), (2,))
    assert "... (200000 chars)" in result.stderr and len(result.output) < 2_000


# --------------------------------------------------------------------------------------------
# Fuzz: random stack files never give a traceback or an exit code other than 0/2
# --------------------------------------------------------------------------------------------

KNOWN_KEYS = [
    "aws:region",
    "sovereign-ml:owner",
    "sovereign-ml:costCenter",
    "sovereign-ml:tier",
    "sovereign-ml:gpuPoolEnabled",
    "sovereign-ml:tenants",
    "sovereign-ml:residencyZone",
    "sovereign-ml:vaultAddress",
    "sovereign-ml:monthlyBudgetUsd",
    "aws:secretKey",
    "kubernetes:kubeconfig",
]
key_names = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.text(min_size=0, max_size=30),
    st.builds(
        lambda ns, name: f"{ns}:{name}",
        st.sampled_from(["sovereign-ml", "sovereign_ml", "aws", "AWS", "vault", "x", ""]),
        st.text(string.ascii_letters + "[]/:-_", max_size=20),
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["[/]", "[secret]", "me-central-1", "smb", "\n", "AKIAIOSFODNN7EXAMPLE"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
        st.fixed_dictionaries({"secure": st.one_of(st.text(max_size=10), st.integers())}),
    ),
    max_leaves=8,
)
configs = st.dictionaries(key_names, values, max_size=8)


def yaml_document(config: dict[str, Any], with_base: bool) -> bytes:
    body = {"config": {**(yaml.safe_load(BASE)["config"] if with_base else {}), **config}}
    return yaml.safe_dump(body, allow_unicode=True).encode("utf-8", "surrogatepass")


def yaml_fragments() -> st.SearchStrategy[bytes]:
    """Text that is almost a stack file: lines of YAML syntax in random order."""
    pieces = st.sampled_from(
        [
            "config:\n", "  aws:region: me-central-1\n", "  sovereign-ml:owner: a\n",
            "  sovereign-ml:costCenter: c\n", "  k: &a [1, 2]\n", "  j: *a\n", "  j: *b\n",
            "  <<: {x: 1}\n", "---\n", "  - item\n", "  : \n", "\t", "  x: !!binary AA==\n",
            "  y: !!python/object:os.system x\n", "  z: 2001-13-45\n", "  q: '\n", '  "a": "\\x"\n',
            "  n: [[[[\n", "  m: {a: 1, a: 2}\n", "  s: {secure: v1:x}\n", "%YAML 1.1\n",
        ]
    )  # fmt: skip
    return st.lists(pieces, max_size=12).map(lambda parts: "".join(parts).encode())


stack_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(yaml_document, configs, st.booleans()),
    yaml_fragments(),
)


def run_both(tmp_path: Path, data: bytes) -> None:
    """``config validate`` and ``synth`` on ``data``: both end cleanly, and they agree."""
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / "Pulumi.fuzz.yaml").write_bytes(data)
    where = ("--stacks-dir", str(stacks))
    validated = clean(invoke("config", "validate", "fuzz", *where))
    synthesized = clean(invoke("synth", "fuzz", *where, "--program", str(EMPTY_PROGRAM), "-q"))
    assert validated.exit_code == synthesized.exit_code, (validated.output, synthesized.output)


@settings(
    max_examples=120,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=stack_bytes)
@example(data=BASE.encode())  # valid: the synth runs and exits 0
@example(data=b"\xff\xfe" + BASE.encode())
@example(data=b"config: &a [*a]\n")
@example(data=b"config:\n  k: " + b"[" * 5_000 + b"]" * 5_000 + b"\n")
def test_random_stack_files_end_in_0_or_2_without_a_traceback(
    tmp_path: Path, build: Path, data: bytes
) -> None:
    run_both(tmp_path, data)


@settings(
    max_examples=50,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(config=configs)
@example(config={})
@example(config={"aws:secretKey": {"secure": "v1:x"}, "sovereign-ml:tier": "[/]"})
def test_random_keys_on_a_valid_base_end_in_0_or_2(
    tmp_path: Path, build: Path, config: dict[str, Any]
) -> None:
    run_both(tmp_path, yaml_document(config, with_base=True))


def test_usage_errors_print_arguments_literally() -> None:
    result = clean(invoke("pipeline", "run", "[/]"), (2,))
    assert "'[/]'" in result.output
    # The id is checked by the command (one message for every bad id), shown literally.
    result = clean(invoke("features", "get", "[bold]x[/bold]"), (2,))
    assert "customer id '[bold]x[/bold]' is not an integer" in result.output
