"""``sovml artifact``: envelope-encrypt model artifacts with Vault transit, KMS or a local key.

Registered in the main CLI with ``app.add_typer(artifact_app, name="artifact")``. Every failure
ends with exit code 1 and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipelines import artifacts as art

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
EXIT_FAILED = 1


class Backend(StrEnum):
    """Key services the command can use."""

    local = "local"
    vault = "vault"
    kms = "kms"


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
    bool, typer.Option("--force", "-f", help="Replace the destination if it exists.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON instead of a table.")
]


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str) -> NoReturn:
    # soft_wrap: one line per message, however narrow the terminal (log scrapers, grep).
    _stderr().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_FAILED)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every failure into a readable one-line message and exit code 1."""
    try:
        yield
    except typer.Exit:
        raise
    except art.ArtifactError as exc:
        _fail(str(exc))
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # the contract is "no traceback", whatever failed
        _fail(f"unexpected {type(exc).__name__}: {exc}")


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


def _local_key_path(key: str | None) -> Path:
    return Path(key or os.environ.get(LOCAL_KEY_ENV) or art.DEFAULT_LOCAL_KEY_FILE).expanduser()


def _make_service(
    backend: Backend,
    key: str | None,
    *,
    vault_mount: str,
    vault_role: str | None,
    vault_auth_mount: str,
    region: str | None,
    create_local: bool = False,
) -> art.KeyService:
    """The key service for a backend; encrypt may create the local key file on first use."""
    if backend is Backend.local:
        path = _local_key_path(key)
        if create_local:
            keys, created = art.LocalKeyFile.open_or_create(path)
            if created:
                _stderr().print(
                    f"[yellow]created local key file[/] {escape(str(path))} (mode 0600, "
                    f"id {keys.name}). Back it up: without it these artifacts cannot be decrypted."
                )
            return keys
        return art.LocalKeyFile(path)
    if backend is Backend.vault:
        return art.VaultTransitKeys(
            key or art.DEFAULT_VAULT_KEY,
            mount_point=vault_mount,
            kubernetes_role=vault_role,
            kubernetes_mount=vault_auth_mount,
        )
    return art.KmsKeys(key or art.DEFAULT_KMS_KEY, region=region)


def _backend_of(located: art.Located, backend: Backend | None) -> tuple[Backend, str]:
    """Backend and key name an existing artifact was encrypted with (one per artifact)."""
    slots = {(e.key.backend, e.key.name) for e in located.manifest.files}
    if len(slots) != 1:
        _fail(f"{located.manifest_path}: files use different keys {sorted(slots)}; not supported")
    manifest_backend, manifest_key = slots.pop()
    chosen = backend or Backend(manifest_backend)
    if chosen.value != manifest_backend:
        _fail(
            f"{located.manifest_path}: encrypted with the {manifest_backend} backend, "
            f"but --backend {chosen.value} was given"
        )
    return chosen, manifest_key


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A byte progress bar on an interactive stderr; nothing otherwise (CI logs, pipes)."""
    console = _stderr()
    if not console.is_terminal or total < (8 << 20):
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _report(report: art.Report, as_json: bool) -> None:
    verb = {"encrypt": "encrypted", "decrypt": "decrypted", "rewrap": "re-wrapped"}[
        report.operation
    ]
    if as_json:
        doc: dict[str, Any] = {
            "operation": report.operation,
            "source": str(report.source),
            "destination": str(report.destination),
            "manifest": str(report.manifest),
            "backend": report.backend,
            "key": report.key,
            "files": [vars(f) for f in report.files],
            "bytes": report.bytes,
            "seconds": round(report.seconds, 6),
            "mb_per_s": round(report.mb_per_s, 3),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    out = _stdout()
    table = Table(title=f"{verb} with {report.backend} key {report.key}", title_justify="left")
    table.add_column("file", overflow="fold")
    if report.operation == "rewrap":
        table.add_column("key version", justify="right")
        for f in report.files[:MAX_ROWS]:
            table.add_row(escape(f.path), f"{f.previous_version} -> {f.key_version}")
    else:
        table.add_column("bytes", justify="right")
        table.add_column("MB/s", justify="right")
        table.add_column("key version", justify="right")
        for f in report.files[:MAX_ROWS]:
            # Tiny files measure call overhead, not throughput.
            speed = f"{f.size / 1e6 / f.seconds:,.1f}" if f.size >= 1 << 20 else "-"
            table.add_row(escape(f.path), f"{f.size:,}", speed, str(f.key_version))
    if len(report.files) > MAX_ROWS:
        table.add_row(
            f"... {len(report.files) - MAX_ROWS} more", "", *[""] * (len(table.columns) - 2)
        )
    out.print(table)
    if report.operation == "rewrap":
        out.print(
            f"[green]{verb}[/] {len(report.files)} data key(s) in {report.seconds:.2f} s; "
            f"ciphertext untouched. manifest: {escape(str(report.manifest))}"
        )
    else:
        out.print(
            f"[green]{verb}[/] {len(report.files)} file(s), {report.bytes:,} bytes in "
            f"{report.seconds:.2f} s ({report.mb_per_s:,.1f} MB/s) -> "
            f"{escape(str(report.destination))}"
        )
        if report.operation == "encrypt":
            out.print(f"manifest: {escape(str(report.manifest))}")


@artifact_app.command("encrypt")
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
    vault_mount: VaultMountOpt = art.DEFAULT_VAULT_MOUNT,
    vault_role: VaultRoleOpt = None,
    vault_auth_mount: VaultAuthMountOpt = "kubernetes",
    region: RegionOpt = None,
) -> None:
    """Encrypt PATH: X becomes X.enc + X.enc.manifest.json; a folder D becomes D.enc/."""
    size = _parse_size(chunk_size)
    with _errors():
        service = _make_service(
            backend or Backend.local,
            key,
            vault_mount=vault_mount,
            vault_role=vault_role,
            vault_auth_mount=vault_auth_mount,
            region=region,
            create_local=True,
        )
        if not path.exists():
            _fail(f"{path}: no such file or folder")
        with _progress(_tree_size(path), "encrypt") as progress:
            report = art.encrypt_path(
                path, service, out=out, chunk_size=size, overwrite=force, progress=progress
            )
        _report(report, as_json)


@artifact_app.command("decrypt")
def decrypt_cmd(
    path: Annotated[
        Path,
        typer.Argument(help="The .enc file, its .manifest.json, or the .enc folder."),
    ],
    backend: BackendOpt = None,
    key: KeyOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where the plaintext goes. Default: PATH without .enc."),
    ] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    vault_mount: VaultMountOpt = art.DEFAULT_VAULT_MOUNT,
    vault_role: VaultRoleOpt = None,
    vault_auth_mount: VaultAuthMountOpt = "kubernetes",
    region: RegionOpt = None,
) -> None:
    """Decrypt and verify PATH; plaintext appears only once every chunk and digest verified."""
    with _errors():
        located = art.locate(path)
        chosen, manifest_key = _backend_of(located, backend)
        default_key = None if chosen is Backend.local else manifest_key
        service = _make_service(
            chosen,
            key or default_key,
            vault_mount=vault_mount,
            vault_role=vault_role,
            vault_auth_mount=vault_auth_mount,
            region=region,
        )
        total = sum(f.plaintext_size for f in located.manifest.files)
        with _progress(total, "decrypt") as progress:
            report = art.decrypt_path(path, service, out=out, overwrite=force, progress=progress)
        _report(report, as_json)


@artifact_app.command("rewrap")
def rewrap_cmd(
    path: Annotated[
        Path,
        typer.Argument(help="The .enc file, its .manifest.json, or the .enc folder."),
    ],
    backend: BackendOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
    vault_mount: VaultMountOpt = art.DEFAULT_VAULT_MOUNT,
    vault_role: VaultRoleOpt = None,
    vault_auth_mount: VaultAuthMountOpt = "kubernetes",
    region: RegionOpt = None,
) -> None:
    """Re-wrap the data keys of PATH under the newest key version (ciphertext is not rewritten)."""
    with _errors():
        located = art.locate(path)
        chosen, manifest_key = _backend_of(located, backend)
        default_key = None if chosen is Backend.local else manifest_key
        service = _make_service(
            chosen,
            key or default_key,
            vault_mount=vault_mount,
            vault_role=vault_role,
            vault_auth_mount=vault_auth_mount,
            region=region,
        )
        _report(art.rewrap_path(path, service), as_json)


@artifact_app.command("rotate-key")
def rotate_cmd(
    backend: BackendOpt = None,
    key: KeyOpt = None,
    vault_mount: VaultMountOpt = art.DEFAULT_VAULT_MOUNT,
    vault_role: VaultRoleOpt = None,
    vault_auth_mount: VaultAuthMountOpt = "kubernetes",
    region: RegionOpt = None,
) -> None:
    """Add a new key version (local file, transit key, or KMS on-demand rotation).

    Existing artifacts keep decrypting with their old version until `rewrap` moves them.
    """
    with _errors():
        service = _make_service(
            backend or Backend.local,
            key,
            vault_mount=vault_mount,
            vault_role=vault_role,
            vault_auth_mount=vault_auth_mount,
            region=region,
        )
        version = service.rotate()
        outcome = "rotation requested" if version is None else f"newest version {version}"
        _stdout().print(f"[green]rotated[/] {escape(service.describe())}: {outcome}")
