"""``sovml images``: the image and chart inventory and its digest lock.

Registered in ``infra/cli/app.py`` with ``app.add_typer(images_app, name="images")``::

    sovml images list [--json]
    sovml images lock [--endpoint HOST=URL ...] [--ecr-region REGION]
    sovml images mirror STACK --dry-run
    sovml images values STACK [--out DIR]
    sovml images verify-rendered STACK MANIFEST...

The inventory is ``policies/inventory.toml`` and the lock ``policies/images.lock.toml``
(:mod:`policies.inventory`); resolving is :mod:`infra.images.resolve`. Exit codes as in
:mod:`infra.cli.common`: ``list`` exits 0, or 2 when the inventory or lock file is malformed.
``lock`` exits 0 when every entry resolved (the lock is written), 2 for bad input (a malformed
``--endpoint``, a malformed inventory or lock), 3 when any entry could not be resolved (each
one named with why: registry unreachable, refused, no such tag, no AWS credentials); the
entries that did resolve are still written, and the digests already in the lock are kept for
the others. Never 1: an unreachable registry is an environment error, not a result.
``mirror`` prints the copy-and-sign commands of a mirror stack (:mod:`infra.images.mirror`) and
exits 0; 2 for an unknown or invalid stack, a stack on ``imageSource: upstream``, or a run
without ``--dry-run`` (only the dry run is offered: the commands need the internet and the
zone's registry at once, which is the operator's machine, not this one).
``values`` writes each Helm release's values and a ``releases.tsv`` index for ``helm template``
(:mod:`infra.images.rendered`): 0 written; 2 for a bad stack or an unwritable ``--out``.
``verify-rendered`` judges every container image of ``helm template`` output: 0 when each is an
inventory image in the stack's zone registry (by the lock's digest where it pins one), 1 when any
is not (each named, with why), 2 for a bad stack, an upstream stack, or a manifest that cannot be
read or parsed within bounds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from infra.cli.common import EXIT_INTERNAL, EXIT_NEGATIVE, consoles, fail, folder_problem, styled

images_app = typer.Typer(
    help="The inventory of images and charts, and its digest lock.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


LockOpt = Annotated[
    Path | None,
    typer.Option("--lock", help="The lock file [default: policies/images.lock.toml]."),
]


def _load(err: Any, lock: Path | None) -> tuple[dict, dict, Path]:
    """Inventory, lock and the lock's path; exits 2 naming the file, entry and key when either
    is malformed."""
    from policies.inventory import LOCK_FILE, InventoryError, load_inventory, load_lock

    path = lock if lock is not None else LOCK_FILE
    if path.exists() and not path.is_file():
        fail(err, f"--lock {path}: not a regular file")
    try:
        inventory = load_inventory()
        return inventory, load_lock(path, inventory), path
    except (InventoryError, OSError, UnicodeDecodeError) as exc:
        fail(err, str(exc))


@images_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    lock: LockOpt = None,
) -> None:
    """Every image and chart the platform runs, with its lock status."""
    out, err = consoles()
    inventory, pins, _ = _load(err, lock)
    rows = [
        {
            "id": e.id,
            "kind": e.kind,
            "upstream": e.reference,
            "mirror": e.mirror,
            "digest": pins[e.id].digest if e.id in pins else None,
            "source": pins[e.id].source if e.id in pins else None,
            "used_by": list(e.used_by),
        }
        for e in inventory.values()
    ]
    if as_json:
        out.print(json.dumps(rows, indent=2), markup=False, highlight=False)
        return
    table = Table(title="image inventory (policies/inventory.toml)")
    for column in ("id", "kind", "upstream", "mirror", "lock"):
        table.add_column(column)
    for row in rows:
        lock = (
            styled(row["digest"][:19] + "...", "green")
            if row["digest"]
            else styled("unresolved", "yellow")
        )
        table.add_row(row["id"], row["kind"], row["upstream"], row["mirror"], lock)
    out.print(table)
    resolved = sum(1 for row in rows if row["digest"])
    out.print(f"{resolved} of {len(rows)} pinned by digest", markup=False, highlight=False)


def _endpoints(err: Any, raw: list[str]) -> dict[str, str]:
    """``HOST=URL`` pairs; exits 2 for one that is not."""
    out: dict[str, str] = {}
    for item in raw:
        key, sep, url = item.partition("=")
        if not sep or not key or not url.startswith(("https://", "http://")):
            fail(err, f"--endpoint {item!r}: expected REGISTRY=URL, e.g. quay.io=https://mirror")
        out[key] = url
    return out


@images_app.command("lock")
def lock_cmd(
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="Ask URL instead of a registry host or chart repository (REGISTRY=URL); "
            "repeatable."
        ),
    ] = None,
    ecr_region: Annotated[
        str | None,
        typer.Option(help="Resolve from the zone's ECR mirror in this region (AWS credentials)."),
    ] = None,
    lock: LockOpt = None,
) -> None:
    """Resolve every entry's digest from its registry and write policies/images.lock.toml."""
    from infra.images.resolve import resolve, write_lock

    out, err = consoles()
    inventory, pins, path = _load(err, lock)
    endpoints = _endpoints(err, endpoint or [])
    ecr = None
    if ecr_region is not None:
        import boto3

        ecr = boto3.client("ecr", region_name=ecr_region)
    outcomes = resolve(inventory.values(), endpoints, ecr)
    failed = [o for o in outcomes if o.pin is None]
    merged = {**pins, **{o.entry.id: o.pin for o in outcomes if o.pin is not None}}
    try:
        write_lock(merged, inventory, path)
    except OSError as exc:
        fail(err, f"--lock {path}: {exc.strerror or exc}", EXIT_INTERNAL)
    out.print(
        f"resolved {len(outcomes) - len(failed)} of {len(outcomes)}; wrote {path}",
        markup=False,
        highlight=False,
    )
    if failed:
        for o in failed:
            err.print(f"unresolved {o.entry.id}: {o.error}", soft_wrap=True)
        fail(err, f"{len(failed)} entries unresolved (named above)", EXIT_INTERNAL)


@images_app.command("mirror")
def mirror_cmd(
    stack: Annotated[str, typer.Argument(help="A stack on imageSource: mirror, e.g. prod-uae.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the commands (the only mode offered).")
    ] = False,
    lock: LockOpt = None,
) -> None:
    """Print the commands that copy every image and chart into STACK's zone registry and sign
    the images with its KMS key."""
    from infra.config.problems import StackFileError
    from infra.config.stackfile import load_stack
    from infra.images.mirror import MirrorError, mirror_commands

    out, err = consoles()
    if not dry_run:
        fail(
            err,
            "only --dry-run is offered: it prints the commands to run where the upstream "
            "registries and the zone's registry are both reachable",
        )
    try:
        cfg, _, _ = load_stack(stack)
    except StackFileError as exc:
        fail(err, str(exc) if not exc.problems else f"{exc}: run `sovml config validate {stack}`")
    if cfg.image_source != "mirror":
        fail(
            err,
            f"stack {stack} pulls from upstream (imageSource: {cfg.image_source}); set "
            "imageSource: mirror and allowedAccountIds to give it a zone registry",
        )
    inventory, pins, _ = _load(err, lock)
    try:
        lines = mirror_commands(
            stack=stack,
            name_prefix=cfg.name_prefix,
            # Config validation refuses mirror without an allowed account, so [0] exists.
            account_id=cfg.allowed_account_ids[0],
            region=cfg.region,
            inventory=inventory,
            pins=pins,
        )
    except MirrorError as exc:
        fail(err, str(exc))
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _mirror_stack(err: Any, stack: str) -> Any:
    """STACK's validated config; exits 2 for a bad stack or one on ``imageSource: upstream``."""
    from infra.config.problems import StackFileError
    from infra.config.stackfile import load_stack

    try:
        cfg, _, _ = load_stack(stack)
    except StackFileError as exc:
        fail(err, str(exc) if not exc.problems else f"{exc}: run `sovml config validate {stack}`")
    if cfg.image_source != "mirror":
        fail(err, f"stack {stack} pulls from upstream (imageSource: {cfg.image_source})")
    return cfg


@images_app.command("values")
def values_cmd(
    stack: Annotated[str, typer.Argument(help="Stack name, e.g. prod-uae.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the values files [default: build/STACK/charts]."),
    ] = None,
) -> None:
    """Write each Helm release's values (as the program sets them) and a releases.tsv index, for
    `helm template --skip-crds` where the charts are reachable; then `verify-rendered`."""
    from infra.images.rendered import releases, write_values
    from infra.synth import runner
    from infra.synth.fresh import fresh_record

    console, err = consoles()
    _mirror_stack(err, stack)
    # Read at call time, not import time: the build folder is one setting of the synth.
    build = runner.BUILD
    target = out if out is not None else build / stack / "charts"
    if (problem := folder_problem(target)) is not None:
        fail(err, f"--out {target}: {problem}")
    try:
        record = fresh_record(stack, build_dir=build).record
        index = write_values(releases(record), target)
    except runner.SynthError as exc:
        fail(err, f"{stack}: {exc}")
    except (OSError, ValueError) as exc:
        fail(err, f"--out {target}: {exc}")
    console.print(f"wrote {index} and the values of each release beside it", markup=False)


@images_app.command("verify-rendered")
def verify_rendered_cmd(
    stack: Annotated[str, typer.Argument(help="The stack the manifests were rendered for.")],
    manifests: Annotated[
        list[Path], typer.Argument(help="`helm template --skip-crds` output files.")
    ],
    lock: LockOpt = None,
) -> None:
    """Judge every container image of rendered manifests: each must be an inventory image in
    STACK's zone registry (by the lock's digest where it pins one). Exits 1 naming any other."""
    from infra.images.rendered import foreign_images, rendered_images
    from infra.synth.expand import ManifestError
    from policies.inventory import registry_host

    console, err = consoles()
    cfg = _mirror_stack(err, stack)
    inventory, pins, _ = _load(err, lock)
    found: list[tuple[str, str]] = []
    for path in manifests:
        try:
            text = path.read_text(encoding="utf-8")
            found += [(f"{path.name}: {w}", i) for w, i in rendered_images(text, str(path))]
        except (OSError, UnicodeDecodeError) as exc:
            fail(err, f"{path}: cannot be read ({exc.__class__.__name__})")
        except ManifestError as exc:
            fail(err, str(exc))
    host = registry_host(cfg.allowed_account_ids[0], cfg.region)
    bad = foreign_images(found, host, pins, inventory)
    for where, image, why in bad:
        err.print(f"refused {where}: {image}: {why}", markup=False, soft_wrap=True)
    if bad:
        console.print(f"{len(bad)} of {len(found)} images may not run (named above)")
        raise typer.Exit(EXIT_NEGATIVE)
    console.print(f"{len(found)} images, each an inventory image in {host}", markup=False)
