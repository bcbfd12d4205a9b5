"""``sovml artifact``: envelope-encrypt model artifacts with Vault transit, KMS or a local key.

Registered in the main CLI with ``app.add_typer(artifact_app, name="artifact")``. The commands
parse options, call :mod:`pipelines.artifacts` and render its reports. Every failure ends with
a one-line message on stderr, never a traceback, and an exit code that says whose problem it is:

* ``0`` done;
* ``2`` bad input: an argument, a tampered or foreign artifact or manifest (also one whose wrapped
  key the key service refuses to open), a key other than the manifest's, a destination that
  ``--force`` may not replace (:data:`infra.cli.common.EXIT_BAD_INPUT`);
* ``3`` the environment: key service unreachable, access denied, key or key version missing, an
  unusable local key file, a file-system error, anything unexpected
  (:data:`infra.cli.common.EXIT_INTERNAL`);
* killed by the signal itself on SIGINT, SIGTERM or SIGHUP (a shell shows 130, 143, 129), after
  the temporary output was removed.

They never exit 1: these commands have no negative outcome, only success or an error.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from infra.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    consoles,
    error_line,
    fail,
    internal_error,
    joined,
    styled,
)
from infra.config.redaction import scrub
from pipelines import artifacts as art
from pipelines.audit.log import AuditError

artifact_app = typer.Typer(
    name="artifact",
    help=(
        "Envelope-encrypt model artifacts (files or model-repository folders): AES-256-GCM, "
        "streamed in chunks, with per-file data keys wrapped by Vault/OpenBao transit, AWS KMS "
        "or a local key file."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LOCAL_KEY_ENV = "SOVML_ARTIFACT_KEY"
MAX_ROWS = 25

Backend = StrEnum("Backend", [(name, name) for name in art.BACKENDS])
"""Key services the command can use (the library's backends)."""


BackendOpt = Annotated[
    Backend | None,
    typer.Option(
        "--backend",
        "-b",
        case_sensitive=False,
        help=(
            "Key service: local (key file), vault (transit engine of Vault/OpenBao) or kms. "
            "Default: local for encrypt; the manifest's backend for decrypt and rewrap."
        ),
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        "-k",
        help=(
            f"local: key file path (default ${LOCAL_KEY_ENV} or {art.DEFAULT_LOCAL_KEY_FILE}); "
            f"vault: transit key name (default {art.DEFAULT_VAULT_KEY}); "
            f"kms: key id, ARN or alias (default {art.DEFAULT_KMS_KEY}). "
            "decrypt/rewrap default to the key named in the manifest."
        ),
        show_default=False,
    ),
]
VaultMountOpt = Annotated[
    str,
    typer.Option(
        "--vault-mount",
        envvar="SOVML_VAULT_TRANSIT_MOUNT",
        help="Mount path of the transit engine. Address/token: VAULT_ADDR, VAULT_TOKEN.",
        rich_help_panel="Vault",
    ),
]
VaultRoleOpt = Annotated[
    str | None,
    typer.Option(
        "--vault-role",
        envvar="SOVML_VAULT_ROLE",
        help="Log in with Kubernetes auth as this role, using the pod's service-account token.",
        rich_help_panel="Vault",
    ),
]
VaultAuthMountOpt = Annotated[
    str,
    typer.Option(
        "--vault-auth-mount",
        help="Mount path of the Kubernetes auth method.",
        rich_help_panel="Vault",
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="AWS region of the KMS key (default: AWS_REGION / the profile's).",
        rich_help_panel="KMS",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        "-f",
        help="Replace an earlier output of this command at the destination (never the input, "
        "the key file, or a folder holding anything else).",
    ),
]
_KW = inspect.Parameter.KEYWORD_ONLY

ArtifactArg = Annotated[
    Path, typer.Argument(help="The .enc file, its .manifest.json, or the .enc folder.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
]


def _interrupted(err: Console) -> Callable[[int], None]:
    """The line said when a signal stops a command (after the operation cleaned up)."""

    def say(signum: int) -> None:
        name = signal.Signals(signum).name
        error_line(err, f"interrupted by {name}; no partial output was left behind")

    return say


def _exit_code(exc: art.ArtifactError) -> int:
    """2 for bad input, 3 for the environment (:attr:`art.ArtifactError.cause`)."""
    return EXIT_BAD_INPUT if exc.cause == "input" else EXIT_INTERNAL


@contextmanager
def _errors(err: Console) -> Iterator[None]:
    """Turn every failure into a one-line message and exit code 2 or 3; die of a stop signal."""
    try:
        with art.exit_on_signals(_interrupted(err)):
            yield
    except typer.Exit:
        raise
    except art.Interrupted as exc:  # the signal came as the operation ended: still die of it
        _interrupted(err)(exc.signum)
        signal.signal(exc.signum, signal.SIG_DFL)
        os.kill(os.getpid(), exc.signum)
    except art.ArtifactError as exc:
        fail(err, str(exc), _exit_code(exc))
    except AuditError as exc:  # the operation happened but could not be recorded
        fail(err, str(exc), EXIT_INTERNAL)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(err, f"{where}{exc.strerror or exc}", EXIT_INTERNAL)
    except Exception as exc:  # the contract is "no traceback", whatever failed: log it, exit 3
        raise typer.Exit(internal_error(err, exc)) from None


_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|k|mib|m)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20}


def _parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise typer.BadParameter("use bytes or a KiB/MiB suffix, e.g. 1MiB, 256KiB, 65536")
    size = int(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None]
    if not art.MIN_CHUNK_SIZE <= size <= art.MAX_CHUNK_SIZE:
        raise typer.BadParameter(f"must be {art.MIN_CHUNK_SIZE} bytes..64MiB")
    return size


KeyOptions = dict[str, Any]
"""A command's key-service options, as :func:`art.open_key_service` takes them."""

_KEY_SERVICE_PARAMETERS = (
    inspect.Parameter(
        "vault_mount", _KW, default=art.DEFAULT_VAULT_MOUNT, annotation=VaultMountOpt
    ),
    inspect.Parameter("vault_role", _KW, default=None, annotation=VaultRoleOpt),
    inspect.Parameter(
        "vault_auth_mount", _KW, default=art.DEFAULT_VAULT_AUTH_MOUNT, annotation=VaultAuthMountOpt
    ),
    inspect.Parameter("region", _KW, default=None, annotation=RegionOpt),
)


def _with_key_service_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the key-service options, last; it receives them as ``key_options``.

    Typer reads a command's options from its signature. Every artifact command takes the same
    four (``--vault-mount``, ``--vault-role``, ``--vault-auth-mount``, ``--region``), so they are
    declared once, here, and appended to the signature typer sees; the command gets them as one
    :data:`KeyOptions` (with the local key file from ``$SOVML_ARTIFACT_KEY``).
    """
    own = inspect.signature(command, eval_str=True).parameters.values()

    @functools.wraps(command)
    def with_options(
        *args: Any,
        vault_mount: str,
        vault_role: str | None,
        vault_auth_mount: str,
        region: str | None,
        **kwargs: Any,
    ) -> None:
        key_options: KeyOptions = {
            "local_key_file": os.environ.get(LOCAL_KEY_ENV),
            "vault_mount": vault_mount,
            "vault_role": vault_role,
            "vault_auth_mount": vault_auth_mount,
            "region": region,
        }
        command(*args, key_options=key_options, **kwargs)

    parameters = [p for p in own if p.name != "key_options"]
    with_options.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*parameters, *_KEY_SERVICE_PARAMETERS]
    )
    return with_options


def _announce_key_file(err: Console) -> Callable[[art.LocalKeyFile], None]:
    """The notice shown once, when encrypt created the local key file."""

    def announce(keys: art.LocalKeyFile) -> None:
        err.print(
            joined(
                styled("created local key file", "yellow"),
                f" {keys.path} (mode 0600, id {keys.name}). Back it up: without it these "
                "artifacts cannot be decrypted.",
            ),
            soft_wrap=True,
        )

    return announce


def _open_artifact(
    path: Path, backend: Backend | None, key: str | None, key_options: KeyOptions
) -> tuple[art.Located, art.KeyService]:
    """An existing artifact and its key service; ``--backend`` must match its manifest's.

    The key service is the one ``--key`` names, else the manifest's (its name passed the strict
    pattern when the manifest was parsed); nothing is contacted here.
    """
    located = art.locate(path)
    manifest_backend, _ = located.key()
    if backend is not None and backend.value != manifest_backend:
        raise art.KeyMismatchError(
            f"encrypted with the {manifest_backend} backend, but --backend {backend.value} "
            "was given",
            located.manifest_path,
        )
    return located, art.open_artifact_key_service(located, key, **key_options)


@contextmanager
def _progress(err: Console, total: int, label: str) -> Iterator[art.Progress | None]:
    """A byte progress bar on an interactive stderr; nothing otherwise (CI logs, pipes)."""
    if not err.is_terminal or total < (8 << 20):
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _files_table(report: art.Report, verb: str) -> Table:
    """One row per file (at most :data:`MAX_ROWS`): sizes and speed, or the version change."""
    table = Table(title=f"{verb} with {report.backend} key {report.key}", title_justify="left")
    table.add_column("file", overflow="fold")
    if report.operation == "rewrap":
        table.add_column("key version", justify="right")
        for f in report.files[:MAX_ROWS]:
            table.add_row(f.path, f"{f.previous_version} -> {f.key_version}")
    else:
        table.add_column("bytes", justify="right")
        table.add_column("MB/s", justify="right")
        table.add_column("key version", justify="right")
        for f in report.files[:MAX_ROWS]:
            # Tiny files measure call overhead, not throughput.
            speed = f"{f.size / 1e6 / f.seconds:,.1f}" if f.size >= 1 << 20 else "-"
            table.add_row(f.path, f"{f.size:,}", speed, str(f.key_version))
    if len(report.files) > MAX_ROWS:
        table.add_row(
            f"... {len(report.files) - MAX_ROWS} more", "", *[""] * (len(table.columns) - 2)
        )
    return table


def _render(out: Console, report: art.Report, as_json: bool) -> None:
    """The report as JSON, or as a table and a summary line."""
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    verb = {"encrypt": "encrypted", "decrypt": "decrypted", "rewrap": "re-wrapped"}[
        report.operation
    ]
    out.print(_files_table(report, verb))
    if report.operation == "rewrap":
        out.print(
            joined(
                styled(verb, "green"),
                f" {len(report.files)} data key(s) in {report.seconds:.2f} s; "
                f"ciphertext untouched. manifest: {report.manifest}",
            ),
            soft_wrap=True,
        )
        return
    out.print(
        joined(
            styled(verb, "green"),
            f" {len(report.files)} file(s), {report.bytes:,} bytes in "
            f"{report.seconds:.2f} s ({report.mb_per_s:,.1f} MB/s) -> {report.destination}",
        ),
        soft_wrap=True,
    )
    if report.operation == "encrypt":
        out.print(f"manifest: {report.manifest}", soft_wrap=True)


def _record(report: art.Report) -> None:
    """``artifact.encrypted`` / ``artifact.rewrapped`` in the lifecycle log.

    A ciphertext file is recorded by path (a rewrap leaves it as it is); a folder artifact and
    every manifest by digest only (a rewrap replaces the manifests), the plaintext by digest
    only (it is the user's). An unwritable log raises ``AuditError``: ``_errors`` makes it exit 3.
    """
    from pipelines.audit import log as audit

    details = {
        "backend": report.backend,
        "key": scrub(report.key)[:1024],
        "files": len(report.files),
        "bytes": report.bytes,
        "path": str(report.destination.resolve())[:1024],
    }
    manifest = {"manifest": audit.digest_ref(report.manifest)}
    if report.operation == "encrypt":
        dest = report.destination
        ciphertext = audit.file_ref(dest) if dest.is_file() else audit.digest_ref(dest)
        audit.append(
            "artifact.encrypted",
            str(dest.resolve())[:1024],
            inputs={"plaintext": audit.digest_ref(report.source)},
            outputs={"ciphertext": ciphertext, **manifest},
            details=details,
        )
    else:
        versions = sorted({str(f.key_version) for f in report.files if f.key_version is not None})
        audit.append(
            "artifact.rewrapped",
            str(report.destination.resolve())[:1024],
            outputs=manifest,
            details={**details, "key_versions": ", ".join(versions)[:1024]},
        )


@artifact_app.command("encrypt")
@_with_key_service_options
def encrypt_cmd(
    path: Annotated[Path, typer.Argument(help="File or model-repository folder to encrypt.")],
    backend: BackendOpt = None,
    key: KeyOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output: the .enc file (its manifest goes beside it as .enc.manifest.json) or "
            "the .enc folder. Default: PATH.enc next to PATH.",
        ),
    ] = None,
    chunk_size: Annotated[
        str, typer.Option("--chunk-size", help="Plaintext bytes per authenticated chunk.")
    ] = "1MiB",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    *,
    key_options: KeyOptions,
) -> None:
    """Encrypt PATH: X becomes X.enc + X.enc.manifest.json; a folder D becomes D.enc/."""
    size = _parse_size(chunk_size)
    stdout, err = consoles()
    with _errors(err):
        # Checked first: a missing input must not create a local key file on the way.
        if not path.exists():
            fail(err, f"{path}: no such file or folder", EXIT_BAD_INPUT)
        service = art.open_key_service(
            (backend or Backend.local).value,
            key,
            create_local=True,
            on_create=_announce_key_file(err),
            **key_options,
        )
        with _progress(err, _tree_size(path), "encrypt") as progress:
            report = art.encrypt_path(
                path, service, out=out, chunk_size=size, overwrite=force, progress=progress
            )
        _record(report)
        _render(stdout, report, as_json)


@artifact_app.command("decrypt")
@_with_key_service_options
def decrypt_cmd(
    path: ArtifactArg,
    backend: BackendOpt = None,
    key: KeyOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where the plaintext goes. Default: PATH without .enc."),
    ] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    *,
    key_options: KeyOptions,
) -> None:
    """Decrypt and verify PATH; plaintext appears only once every chunk and digest verified."""
    stdout, err = consoles()
    with _errors(err):
        located, service = _open_artifact(path, backend, key, key_options)
        with _progress(err, located.manifest.plaintext_size, "decrypt") as progress:
            report = art.decrypt_path(located, service, out=out, overwrite=force, progress=progress)
        _render(stdout, report, as_json)


@artifact_app.command("rewrap")
@_with_key_service_options
def rewrap_cmd(
    path: ArtifactArg,
    backend: BackendOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
    *,
    key_options: KeyOptions,
) -> None:
    """Re-wrap the data keys of PATH under the newest key version (ciphertext is not rewritten)."""
    stdout, err = consoles()
    with _errors(err):
        located, service = _open_artifact(path, backend, key, key_options)
        report = art.rewrap_path(located, service)
        _record(report)
        _render(stdout, report, as_json)


@artifact_app.command("rotate-key")
@_with_key_service_options
def rotate_cmd(
    backend: BackendOpt = None,
    key: KeyOpt = None,
    *,
    key_options: KeyOptions,
) -> None:
    """Add a new key version (local file, transit key, or KMS on-demand rotation).

    Existing artifacts keep decrypting with their old version until `rewrap` moves them.
    """
    stdout, err = consoles()
    with _errors(err):
        service = art.open_key_service(
            (backend or Backend.local).value,
            key,
            **key_options,
        )
        version = service.rotate()
        outcome = "rotation requested" if version is None else f"newest version {version}"
        stdout.print(
            joined(styled("rotated", "green"), f" {scrub(service.describe())}: {outcome}"),
            soft_wrap=True,
        )
