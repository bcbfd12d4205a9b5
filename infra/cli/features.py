"""``sovml features``: apply, materialize and read the credit-risk feature store (Feast).

Registered in ``infra/cli/app.py`` with ``app.add_typer(features_app, name="features")``::

    sovml features apply [--table TABLE] [--repo DIR|YAML]
    sovml features materialize [--end ISO] [--start ISO] [--view NAME ...] [--repo DIR|YAML]
    sovml features get ENTITY_ID [--feature-service NAME | --feature-view NAME ...] [--json]

``--repo`` defaults to ``build/feature_store``, the store ``sovml pipeline run training --local``
trains from and materializes to, so ``get`` returns the values the model was trained with for
that customer's latest event. See :mod:`pipelines.features.config` for what ``--repo`` may name.

Exit codes as in :mod:`infra.cli.common`, each error one ``error: ...`` line, no traceback:

* ``0`` success;
* ``2`` bad input, refused by one validator per input kind in :mod:`pipelines.features` (ids,
  paths, configs and tables before Feast reads or writes any state):

  - ``ENTITY_ID`` (``check_entity_id``): not a decimal integer, or outside ``0 .. 2**63-1``
    (``customer_id`` is a Feast Int64 key), e.g. ``-5``, ``1.5``, ``9223372036854775808``;
  - ``--repo`` (``open_store``): not a folder or ``.yaml`` file; no store there (reads never
    create one); a config that is not YAML, not a mapping, has keys Feast does not know or
    lacks required ones; a registry never written or not a Feast registry; a state folder that
    cannot be created (under a file, no permission);
  - ``apply --table`` (``read_feature_table``): missing, a folder, not Parquet (or CSV by
    suffix), no rows, missing columns, an entity id that is not an integer in range, event
    times that are not date-times, features that are not numeric;
  - ``materialize --start/--end`` (``check_date`` and ``materialize``): not ISO 8601, outside
    1678..2262 (pandas' timestamp range), ``--start`` not before the end, or an ``--end``
    before the data's first event for a view never materialized;
  - names: an unknown ``--model`` (it lists the known models; no silent fall-back to every
    view), ``--feature-service`` or ``--feature-view`` (each lists the registered ones);
  - lookups that find nothing, each with only true facts: before any materialization
    "nothing materialized yet ... run sovml features materialize" (no ids listed); an id not
    online, with example ids that were looked up and are online in those views; an id in the
    offline source but outside the materialized range, said so;
* ``3`` an environment or internal error (the online store unreachable, an unexpected
  exception; ``sovml``'s top-level handler writes the traceback to a log).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.common import consoles, fail, styled
from pipelines import features

features_app = typer.Typer(
    help="The feature store (Feast): apply definitions, materialize online, look up a customer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RepoOption = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        help="Feature store: a state folder, a Feast repository or a feature_store*.yaml "
        "(default: build/feature_store, where the local pipeline run materializes).",
        show_default=False,
    ),
]


def _date(value: str | None, option: str, err: Console) -> datetime | None:
    """``value`` of ``option`` as a datetime (None stays None); bad input ends the command.

    Only the syntax is checked here; the range and the order of the two dates are
    :func:`pipelines.features.materialize`'s checks, so library callers get them too.
    """
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        fail(err, f"{option} {value!r} is not an ISO 8601 date/time (e.g. 2025-06-30T12:00:00)")


@features_app.command("apply")
def apply_cmd(
    table: Annotated[
        Path | None,
        typer.Option(
            help="Credit-risk table (Parquet/CSV) to write as the offline source first; "
            "without it the existing source is kept."
        ),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Register the customer entity and the feature views (and write the offline source).

    Only adds or updates: the pipeline's feature services (one per model version) stay.
    """
    console, err = consoles()
    try:
        # The table first: a bad one must not leave a new, empty state folder behind.
        frame = features.read_feature_table(table) if table is not None else None
        store = features.open_store(repo, create=True)
        applied = features.apply(store, frame)
    except features.FeatureStoreError as exc:
        fail(err, str(exc))
    out = Table(title=f"project {applied.project}: feature views", title_justify="left")
    for column in ("feature view", "features", "ttl"):
        out.add_column(column)
    for name, (count, ttl) in applied.views.items():
        out.add_row(name, str(count), f"{ttl.days} days")
    console.print(out)
    written = f"{applied.rows} rows written to " if applied.rows else ""
    console.print(f"entity: {applied.entity}", highlight=False)
    console.print(f"offline source: {written}{applied.source}", soft_wrap=True, highlight=False)
    console.print(f"feature services: {', '.join(applied.services) or 'none yet'}", highlight=False)


@features_app.command("materialize")
def materialize_cmd(
    end: Annotated[
        str | None,
        typer.Option(help="End, ISO 8601, UTC if naive (default: just after the data's last)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start for every view, a full reload (default: where the last run ended, or "
            "the data's first timestamp)."
        ),
    ] = None,
    view: Annotated[
        list[str] | None,
        typer.Option("--view", help="Feature view to materialize, repeatable (default: all)."),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Load the offline source into the online store, incrementally, up to the data's end.

    The first run starts at the data's first event (dated 2025), not at "now minus TTL".
    """
    console, err = consoles()
    end_at, start_at = _date(end, "--end", err), _date(start, "--start", err)
    try:
        store = features.open_store(repo)
        done = features.materialize(store, end=end_at, start=start_at, views=view)
    except features.FeatureStoreError as exc:
        fail(err, str(exc))
    out = Table(title="materialized (event time, UTC)", title_justify="left")
    for column in ("feature view", "from", "to", "status"):
        out.add_column(column)
    shown = "%Y-%m-%d %H:%M:%S"
    for m in done:
        status = styled("up to date", "dim") if m.skipped else styled("loaded", "green")
        out.add_row(m.view, m.start.strftime(shown), m.end.strftime(shown), status)
    console.print(out)


# No ignore_unknown_options: a mistyped option must be refused as one (exit 2), never read as an
# id. A negative id is out of range anyway; after ``--`` it reaches the id check and is told so.
@features_app.command("get")
def get_cmd(
    entity_id: Annotated[
        str, typer.Argument(help="Customer id (customer_id), an integer 0 .. 2**63-1.")
    ],
    feature_service: Annotated[
        str | None,
        typer.Option(
            "--feature-service",
            "-s",
            help="Feature service, e.g. credit_risk_v1 (default: the model's latest version's).",
        ),
    ] = None,
    feature_view: Annotated[
        list[str] | None,
        typer.Option(
            "--feature-view",
            "-v",
            help="Read these views' features instead of a service (repeatable).",
        ),
    ] = None,
    model: Annotated[
        str, typer.Option(help="Model whose latest feature service is the default.")
    ] = features.DEFAULT_MODEL,
    repo: RepoOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Online features of one customer, in the model's input order (Triton's features__0).

    Default: the feature service of the model's latest registered version.
    Before any registration: every feature view.
    """
    console, err = consoles()
    if feature_service is not None and feature_view:
        fail(err, "give --feature-service or --feature-view, not both")
    try:
        customer = features.check_entity_id(entity_id)
        store = features.open_store(repo)
        request = features.resolve_request(store, feature_service, feature_view, model)
        values = features.online_features(store, customer, request)
    except features.FeatureStoreError as exc:
        fail(err, str(exc))
    from pipelines.features.repo import definitions

    body: dict[str, Any] = {
        "entity": {"customer_id": customer},
        "feature_service": request.service.name if request.service is not None else None,
        "feature_views": sorted({definitions.VIEW_OF[f] for f in values}),
        "features": values,
    }
    if as_json:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    out = Table(title=f"customer {customer}: {request.label}", title_justify="left")
    out.add_column("#", justify="right")
    out.add_column("feature")
    out.add_column("feature view")
    out.add_column("value", justify="right")
    for i, (name, value) in enumerate(values.items()):
        out.add_row(str(i), name, definitions.VIEW_OF[name], repr(value))
    console.print(out)
