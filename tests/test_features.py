"""The Feast feature store: point-in-time joins, the CLI round trip, online = training.

One store per module, built through the CLI (``apply --table``, ``materialize``), shared by the
tests; the point-in-time cases get a second, hand-made store. Feast is imported once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from infra.cli.features import features_app
from pipelines import features as fs
from pipelines.training import data, schema, steps
from pipelines.training import preprocessing as features_lib

ROWS = 400
SEED = 3
MODEL = "credit_risk"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(features_app, name="features")

    @app.callback()
    def root() -> None:
        """Test wrapper, as infra/cli/app.py registers the features app."""

    return app


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(_cli(), ["features", *args])


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic credit-risk table on disk (what ingest writes)."""
    path = tmp_path_factory.mktemp("table") / "dataset.parquet"
    data.write_table(data.generate(ROWS, SEED), path)
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, table: Path) -> Path:
    """A local store applied and materialized through the CLI, with the service of version 1."""
    state = tmp_path_factory.mktemp("feature_store")
    applied = _invoke("apply", "--table", str(table), "--repo", str(state))
    assert applied.exit_code == 0, applied.output
    assert f"{ROWS} rows written" in applied.output
    fs.register_feature_service(fs.open_store(state), MODEL, 1, list(schema.FEATURES))
    materialized = _invoke("materialize", "--repo", str(state))
    assert materialized.exit_code == 0, materialized.output
    assert materialized.output.count("loaded") == 3
    return state


@pytest.fixture(scope="module")
def store(repo: Path) -> Any:
    return fs.open_store(repo)


@pytest.fixture(scope="module")
def frame(table: Path) -> pd.DataFrame:
    return data.read_table(table)


# ---------------------------------------------------------------------- point-in-time joins

T1 = datetime(2025, 3, 1, tzinfo=UTC)
T2 = datetime(2025, 3, 10, tzinfo=UTC)
T3 = datetime(2025, 3, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def pit_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Customer 7: loan_amount 1000 at t1, 2000 at t3. Customer 8: one row at t1."""
    rows = data.generate(3, 1)
    rows[schema.ENTITY] = [7, 7, 8]
    rows[schema.TIMESTAMP] = pd.to_datetime([T1, T3, T1], utc=True)
    rows["loan_amount"] = [1000.0, 2000.0, 3000.0]
    rows["age"] = [30.0, 31.0, 50.0]
    store = fs.open_store(tmp_path_factory.mktemp("pit"), create=True)
    fs.apply(store, rows)
    return store


def _join(store: Any, entity_rows: list[tuple[int, datetime]]) -> pd.DataFrame:
    frame = pd.DataFrame(entity_rows, columns=[schema.ENTITY, schema.TIMESTAMP])
    return fs.historical_features(store, frame, ["loan_amount", "age"])


def test_a_value_written_after_the_event_never_leaks_into_it(pit_store: Any) -> None:
    joined = _join(pit_store, [(7, T2), (7, T3), (7, T1 - timedelta(days=1))])
    # t2 sits between the two writes: it sees the t1 value, not the later t3 one.
    assert joined.loc[0, "loan_amount"] == 1000.0 and joined.loc[0, "age"] == 30.0
    # At t3 itself the t3 row counts (event time <= entity time).
    assert joined.loc[1, "loan_amount"] == 2000.0 and joined.loc[1, "age"] == 31.0
    # Before any write there is nothing to see.
    assert np.isnan(joined.loc[2, "loan_amount"]) and np.isnan(joined.loc[2, "age"])
    # Rows come back in the caller's order, with the caller's columns first.
    assert joined[schema.ENTITY].tolist() == [7, 7, 7]
    assert list(joined.columns) == [schema.ENTITY, schema.TIMESTAMP, "loan_amount", "age"]


def test_a_value_older_than_its_views_ttl_is_not_joined(pit_store: Any) -> None:
    from pipelines.features.repo import definitions

    ttl = definitions.VIEW_TTL["loan_application"]
    assert ttl < definitions.VIEW_TTL["customer_profile"]
    within, beyond = T1 + ttl, T1 + ttl + timedelta(days=1)
    joined = _join(pit_store, [(8, within), (8, beyond)])
    assert joined.loc[0, "loan_amount"] == 3000.0
    # One day past loan_application's TTL: its feature is null, the 365-day profile still joins.
    assert np.isnan(joined.loc[1, "loan_amount"])
    assert joined.loc[1, "age"] == 50.0


def test_the_features_step_refuses_rows_without_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entity rows 40 days after their features: loan_application (30-day TTL) has expired."""
    rows = data.generate(50, 2)
    path = tmp_path / "dataset.parquet"
    data.write_table(rows, path)
    outs = [str(tmp_path / n) for n in ("train.parquet", "test.parquet", "spec.json")]
    real = fs.historical_features

    def forty_days_later(store: Any, entity_rows: pd.DataFrame, names: list[str]) -> Any:
        late = entity_rows.copy()
        late[schema.TIMESTAMP] = late[schema.TIMESTAMP] + timedelta(days=40)
        joined = real(store, late, names)
        assert joined["loan_amount"].isna().all() and joined["age"].notna().all()
        return joined

    monkeypatch.setattr(fs, "historical_features", forty_days_later)
    with pytest.raises(steps.StepError, match=r"^features: 50 of 50 entity rows found no feature"):
        steps.features(str(path), *outs, 0.2, feature_repo=str(tmp_path / "store"))
    assert not Path(outs[0]).exists()


# -------------------------------------------------------------- apply, materialize, get (CLI)


def test_apply_registers_the_entity_views_and_typed_schemas(store: Any) -> None:
    from feast.types import Float64, Int64

    from pipelines.features.repo import definitions

    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == set(definitions.VIEW_FEATURES)
    for name, view in views.items():
        assert view.ttl == definitions.VIEW_TTL[name]
        assert [f.name for f in view.features] == list(definitions.VIEW_FEATURES[name])
        assert all(f.dtype == Float64 for f in view.features)
        assert view.entity_columns[0].name == schema.ENTITY
        assert view.entity_columns[0].dtype == Int64
    assert [e.name for e in store.list_entities()] == ["customer"]
    assert fs.feature_services(store) == ["credit_risk_v1"]


def test_the_state_stays_in_the_state_folder(repo: Path) -> None:
    assert sorted(p.name for p in repo.iterdir()) == [
        "data",
        "feature_store.yaml",
        "online_store.db",
        "registry.db",
    ]
    assert (repo / "data" / "credit_features.parquet").is_file()


def test_materialize_starts_at_the_datas_first_event_and_is_incremental(
    store: Any, frame: pd.DataFrame
) -> None:
    first, last = frame[schema.TIMESTAMP].min(), frame[schema.TIMESTAMP].max()
    from pipelines.features.repo import definitions

    # Feast's first-run default, now minus the TTL, lies after the data's first event (even
    # for the longest TTL): it would leave customers unservable.
    assert first < datetime.now(UTC) - max(definitions.VIEW_TTL.values())
    for view in store.list_feature_views():
        start, end = view.materialization_intervals[0]
        assert start == first and end == last + fs.END_MARGIN
    again = fs.materialize(store)
    assert all(m.skipped for m in again)


def test_get_returns_the_entitys_row_in_model_order(repo: Path, frame: pd.DataFrame) -> None:
    row = frame.iloc[17]
    result = _invoke("get", str(int(row[schema.ENTITY])), "--repo", str(repo), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["feature_service"] == "credit_risk_v1"
    assert list(body["features"]) == list(schema.FEATURES)
    assert body["features"] == {f: float(row[f]) for f in schema.FEATURES}
    table = _invoke("get", str(int(row[schema.ENTITY])), "--repo", str(repo))
    assert table.exit_code == 0 and "credit_risk_v1" in table.output
    assert repr(float(row["income"])) in table.output


def test_get_one_feature_view(repo: Path, frame: pd.DataFrame) -> None:
    row = frame.iloc[3]
    result = _invoke(
        "get", str(int(row[schema.ENTITY])), "-v", "loan_application", "--repo", str(repo), "--json"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["feature_service"] is None and body["feature_views"] == ["loan_application"]
    assert list(body["features"]) == [
        "loan_amount",
        "loan_term_months",
        "interest_rate",
        "payment_to_income",
    ]


def test_unknown_entity_exits_2_naming_the_views_and_known_ids(
    repo: Path, frame: pd.DataFrame
) -> None:
    result = _invoke("get", "5", "--repo", str(repo))
    assert result.exit_code == 2
    smallest = sorted(frame[schema.ENTITY])[:2]
    assert result.output.strip() == (
        "error: no features for customer 5 in feature views credit_bureau, customer_profile, "
        f"loan_application; known ids are e.g. {smallest[0]}, {smallest[1]}, "
        + ", ".join(str(i) for i in sorted(frame[schema.ENTITY])[2:5])
        + ", ..."
    )
    assert "Traceback" not in result.output


def test_unknown_feature_view_exits_2_listing_the_known_ones(repo: Path) -> None:
    result = _invoke("get", "100000", "--feature-view", "credit_score", "--repo", str(repo))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown feature view 'credit_score'; known feature views: credit_bureau, "
        "customer_profile, loan_application"
    )
    materialize = _invoke("materialize", "--view", "credit_score", "--repo", str(repo))
    assert (
        materialize.exit_code == 2 and "unknown feature view 'credit_score'" in materialize.output
    )


def test_unknown_feature_service_exits_2_listing_the_known_ones(repo: Path) -> None:
    result = _invoke("get", "100000", "-s", "credit_risk_v9", "--repo", str(repo))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: unknown feature service 'credit_risk_v9'; known feature services: credit_risk_v1"
    )
    assert "Traceback" not in result.output


def test_a_missing_store_exits_2(tmp_path: Path) -> None:
    result = _invoke("get", "1", "--repo", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "no feature store at" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "none").exists()  # reads never create a store
    bad = _invoke("materialize", "--end", "yesterday", "--repo", str(tmp_path))
    assert bad.exit_code == 2 and "--end 'yesterday' is not an ISO 8601" in bad.output


# ------------------------------------------------------------------- online == training row


def test_online_row_equals_the_training_row_of_the_latest_event(
    repo: Path, store: Any, table: Path, tmp_path: Path
) -> None:
    """The features step trains from the store; the online lookup serves the very same row."""
    outs = {n: str(tmp_path / n) for n in ("train.parquet", "test.parquet", "spec.json")}
    meta = steps.features(str(table), *outs.values(), 0.2, feature_repo=str(repo))
    assert meta["feature_source"] == str(repo / "data" / "credit_features.parquet")
    spec = features_lib.FeatureSpec.load(outs["spec.json"])
    test = data.read_table(outs["test.parquet"])
    latest = test.iloc[-1]
    assert latest[schema.TIMESTAMP] == data.read_table(table)[schema.TIMESTAMP].max()
    request = fs.resolve_request(store, feature_service="credit_risk_v1")
    online = fs.online_features(store, int(latest[schema.ENTITY]), request)
    assert list(online) == spec.features
    assert online == {f: float(latest[f]) for f in spec.features}
    # The Triton input row is the training matrix's row, bit for bit.
    x, _ = features_lib.matrices(test, spec)
    served = fs.serving_row(store, int(latest[schema.ENTITY]), request)
    assert served.dtype == np.float32 and served.shape == (1, len(spec.features))
    np.testing.assert_array_equal(served[0], x[-1])


def test_training_rows_from_the_store_equal_the_table(
    repo: Path, table: Path, tmp_path: Path
) -> None:
    outs = [str(tmp_path / n) for n in ("train.parquet", "test.parquet", "spec.json")]
    steps.features(str(table), *outs, 0.2, feature_repo=str(repo))
    direct = [str(tmp_path / f"direct-{n}") for n in ("train.parquet", "test.parquet", "spec.json")]
    steps.features(str(table), *direct, 0.2)
    for via_store, plain in zip(outs[:2], direct[:2], strict=True):
        pd.testing.assert_frame_equal(data.read_table(via_store), data.read_table(plain))


def test_model_input_row_is_what_the_network_sees(
    store: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    import torch

    from pipelines.training import model

    train, test, cutoff = features_lib.split_out_of_time(frame, 0.2)
    spec = features_lib.fit(train, test, cutoff)
    values = fs.online_features(store, int(frame.iloc[0][schema.ENTITY]))
    got = fs.model_input_row(values, spec)
    raw = torch.from_numpy(fs.serving_row(store, int(frame.iloc[0][schema.ENTITY])))
    want = model.Preprocess(spec)(raw).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    with pytest.raises(fs.FeatureStoreError, match="lacks"):
        fs.model_input_row({"age": 1.0}, spec)


# ---------------------------------------------------------------------------- definitions


def test_views_cover_the_schema_and_services_are_named_per_version(store: Any) -> None:
    from pipelines.features.repo import definitions

    definitions.check_coverage()
    assert fs.feature_service_name("credit_risk", 3) == "credit_risk_v3"
    with pytest.raises(ValueError, match="positive registry version"):
        fs.feature_service_name("credit_risk", 0)
    # The service keeps the model's order, which interleaves the views.
    fs.register_feature_service(store, MODEL, 2, list(reversed(schema.FEATURES)))
    try:
        assert fs.latest_feature_service(store, MODEL) == "credit_risk_v2"
        request = fs.resolve_request(store)
        assert request.features == list(reversed(schema.FEATURES))
    finally:
        store.delete_feature_service("credit_risk_v2")
    with pytest.raises(fs.UnknownFeatureViewError, match="no feature view serves"):
        fs.register_feature_service(store, MODEL, 3, ["age", "shoe_size"])


PROD_ENV = {
    "FEATURES_BUCKET": "sovml-prod-features",
    "REDIS_HOST": "master.cache.example",
    "REDIS_PASSWORD": "s3cret",
}


def test_prod_config_expands_its_placeholders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As Feast reads it (os.path.expandvars, then the models); Redis needs the redis package."""
    import os

    import yaml
    from feast.repo_config import RegistryConfig

    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    raw = yaml.safe_load(os.path.expandvars(fs.PROD_CONFIG.read_text()))
    assert raw["project"] == "credit_risk" and raw["provider"] == "aws"
    registry = RegistryConfig(**raw["registry"])
    assert registry.path == "s3://sovml-prod-features/registry.db"
    assert registry.s3_additional_kwargs == {"ServerSideEncryption": "aws:kms"}
    assert raw["online_store"]["type"] == "redis"
    assert raw["online_store"]["connection_string"] == (
        "master.cache.example:6379,ssl=true,password=s3cret"
    )
    assert raw["offline_store"] == {"type": "file"}
    assert raw["entity_key_serialization_version"] == 3
    fake: Any = SimpleNamespace(config=SimpleNamespace(registry=registry), repo_path=Path("."))
    assert fs.source_uri(fake) == "s3://sovml-prod-features/data/credit_features.parquet"
    # The cluster default resolves inside the code the pod carries, from any working directory.
    monkeypatch.chdir(tmp_path)
    assert fs.resolve_repo("pipelines/features/repo/feature_store.prod.yaml") == fs.PROD_CONFIG


def test_prod_config_is_a_valid_feast_config(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis", reason="Feast's Redis online store needs the redis package")
    from feast.repo_config import load_repo_config

    for key, value in PROD_ENV.items():
        monkeypatch.setenv(key, value)
    config = load_repo_config(fs.PROD_CONFIG.parent, fs.PROD_CONFIG)
    assert config.online_store.type == "redis"


def test_local_template_points_into_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from feast.repo_config import load_repo_config

    config = load_repo_config(fs.REPO_DIR, fs.LOCAL_TEMPLATE)
    root = fs.CODE_ROOT
    assert (
        fs.REPO_DIR / config.registry.path
    ).resolve() == root / "build/feature_store/registry.db"
    assert (fs.REPO_DIR / config.online_store.path).resolve() == (
        root / "build/feature_store/online_store.db"
    )
    assert root / "build" / "feature_store" == fs.DEFAULT_REPO


# ------------------------------------------------------------------- the code the pods carry


def _imported_modules(relative: str, top_level_only: bool) -> list[str]:
    """``pipelines.*``/``kernels.*`` names a file imports (at module level only, or anywhere)."""
    import ast

    tree = ast.parse((fs.CODE_ROOT / relative).read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n.split(".")[0] in ("pipelines", "kernels")]


def _as_file(name: str) -> str | None:
    """The repository file a dotted module name is, None for a name that is no module."""
    for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
        if (fs.CODE_ROOT / candidate).exists():
            return candidate
    return None


def test_the_feature_steps_embed_exactly_the_feature_store_files() -> None:
    """The cluster's feature steps carry every file of the package, and nothing else of it."""
    from pipelines.training import packaging as pipeline
    from pipelines.training import provenance

    package = fs.CODE_ROOT / "pipelines" / "features"
    on_disk = {
        str(p.relative_to(fs.CODE_ROOT)) for p in package.rglob("*") if p.suffix in (".py", ".yaml")
    }
    assert set(pipeline.FEATURE_STORE_CODE) == on_disk
    library = {p for p in on_disk if p.endswith(".py") and "/repo/" not in p}
    assert set(pipeline.FEATURE_STORE_LIBRARY) == library
    # features and materialize import the definitions (inside functions, too)...
    carried = {*provenance.STEP_LIBRARY, *pipeline.FEATURE_STORE_CODE}
    for relative in (p for p in pipeline.FEATURE_STORE_CODE if p.endswith(".py")):
        for name in _imported_modules(relative, top_level_only=False):
            assert _as_file(name) in (None, *carried), f"{relative} imports {name}"
    # ...register only names the service: the library must load without the repository.
    carried = {*provenance.STEP_LIBRARY, *pipeline.FEATURE_STORE_LIBRARY}
    for relative in pipeline.FEATURE_STORE_LIBRARY:
        for name in _imported_modules(relative, top_level_only=True):
            assert _as_file(name) in (None, *carried), f"{relative} imports {name}"


def test_importing_the_library_does_not_import_feast() -> None:
    """The CLI imports it at start-up and the register step names a service with it."""
    import subprocess
    import sys

    probe = (
        "import sys, pipelines.features; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('feast', 'typeguard')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=fs.CODE_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
