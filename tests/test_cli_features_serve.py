"""``sovml features`` and ``sovml serve`` refuse bad input clearly (issue #20, findings 5 and 6).

Every case runs the real app (``infra.cli.app``) and asserts the exit code and the message: 2 for
bad input with one ``error:`` line naming the value or path and what is allowed, 3 when Triton
is missing. The ``serve`` refusals need no Triton: ``$SOVML_TRITON_VENV`` points at a missing
folder, so a check that let the input through would end in exit 3, never in the asserted 2.
The feature-store cases share two small stores (one applied, one partly materialized).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli.app import app
from pipelines import features as fs
from pipelines.serving import repository as serving_repo
from pipelines.serving.layout import ServingInputError
from pipelines.serving.triton import check_log_path
from pipelines.training import data, schema

ROWS = 40
RANGE = "allowed: integers 0 to 9223372036854775807 (customer_id is a Feast Int64 entity key)"


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _refused(result: Result, fragment: str, code: int = 2) -> str:
    """Assert ``code`` and one ``error:`` line holding ``fragment``; return that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    assert fragment in lines[0], result.output
    return lines[0]


# ------------------------------------------------------------------------------ entity ids


@pytest.mark.parametrize(
    ("given_id", "problem"),
    [
        ("9223372036854775808", "out of range"),  # 2**63
        ("18446744073709551616", "out of range"),  # 2**64
        ("9" * 5000, "out of range"),  # beyond int()'s digit limit
        ("-5", "out of range"),
        ("-9223372036854775809", "out of range"),
        ("1.5", "not an integer"),
        ("1e3", "not an integer"),
        ("0x10", "not an integer"),
        ("1_000", "not an integer"),
        ("", "not an integer"),
        ("\u0661\u0662", "not an integer"),  # Arabic-Indic digits: int() would take them
    ],
)
def test_get_refuses_ids_outside_int64_with_the_range(
    given_id: str, problem: str, tmp_path: Path
) -> None:
    # The id is checked before the store is opened: no store is needed, none is created.
    # After "--" a value that looks like an option ("-5") is the id, as in every click command.
    result = _run("features", "get", "--repo", str(tmp_path / "store"), "--", given_id)
    line = _refused(result, RANGE)
    assert f"customer id {given_id[:40]!r}"[:-1] in line and problem in line
    assert not (tmp_path / "store").exists()


def test_a_mistyped_option_is_refused_not_read_as_an_id(tmp_path: Path) -> None:
    result = _run("features", "get", "7", "--feature-servce", "x", "--repo", str(tmp_path))
    assert result.exit_code == 2 and "No such option" in result.output, result.output


def test_the_largest_int64_id_passes_the_check_and_reaches_the_store(tmp_path: Path) -> None:
    result = _run("features", "get", "9223372036854775807", "--repo", str(tmp_path / "none"))
    _refused(result, "no feature store at")


@settings(max_examples=60, deadline=None)
@given(st.integers())
def test_check_entity_id_accepts_exactly_the_int64_range(value: int) -> None:
    if 0 <= value <= 2**63 - 1:
        assert fs.check_entity_id(value) == value
        assert fs.check_entity_id(str(value)) == value
    else:
        with pytest.raises(fs.BadInputError, match="out of range; allowed: integers 0 to"):
            fs.check_entity_id(value)


@pytest.mark.parametrize("value", [True, 1.0, math.nan, None, "12a"])
def test_check_entity_id_refuses_non_integers(value: Any) -> None:
    with pytest.raises(fs.BadInputError, match="is not an integer; allowed: integers 0 to"):
        fs.check_entity_id(value)


# ----------------------------------------------------------------------------- --repo


def _store_folder(tmp_path: Path, config: str | bytes) -> Path:
    folder = tmp_path / "store"
    folder.mkdir()
    target = folder / "feature_store.yaml"
    target.write_bytes(config if isinstance(config, bytes) else config.encode())
    return folder


VALID = (
    "project: credit_risk\nprovider: local\nregistry: registry.db\n"
    "online_store:\n  type: sqlite\n  path: online.db\noffline_store:\n  type: file\n"
    "entity_key_serialization_version: 3\n"
)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            "project: [unclosed\n  : :",
            "is not valid YAML: expected ',' or ']', but got ':' at line 2",
        ),
        ("- a\n- b\n", "expected a mapping of Feast settings"),
        ("", "got an empty document"),
        (b"project: \xff\xfe\n", "is not UTF-8 text"),
        (VALID.replace("registry:", "registy:"), "unknown key 'registy'; Feast knows"),
        (VALID.replace("project: credit_risk\n", ""), "project: Field required"),
        (VALID.replace("type: sqlite", "type: nosuch"), "invalid feature store config"),
    ],
)
def test_a_broken_config_is_refused_with_its_path(
    config: str | bytes, fragment: str, tmp_path: Path
) -> None:
    folder = _store_folder(tmp_path, config)
    for command in (["get", "1"], ["apply"], ["materialize"]):
        line = _refused(_run("features", *command, "--repo", str(folder)), fragment)
        assert str(folder / "feature_store.yaml") in line


def test_a_registry_that_is_missing_garbage_or_a_folder_is_refused(tmp_path: Path) -> None:
    folder = _store_folder(tmp_path, VALID)
    line = _refused(_run("features", "get", "1", "--repo", str(folder)), "has no registry yet")
    assert str(folder / "registry.db") in line
    (folder / "registry.db").write_bytes(os.urandom(300))
    garbage = _run("features", "get", "1", "--repo", str(folder))
    _refused(garbage, f"the registry {folder / 'registry.db'} of ")
    assert "is not a readable Feast registry" in garbage.output
    (folder / "registry.db").unlink()
    (folder / "registry.db").mkdir()
    _refused(_run("features", "apply", "--repo", str(folder)), "is not a regular file")


def test_repo_paths_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    for command in (["get", "1"], ["apply"]):
        _refused(_run("features", *command, "--repo", str(plain)), f"{plain} is a file, not")
    _refused(_run("features", "apply", "--repo", str(plain / "sub")), "cannot create a feature")
    missing = tmp_path / "prod.yaml"
    _refused(_run("features", "get", "1", "--repo", str(missing)), "does not exist")
    missing.mkdir()
    _refused(_run("features", "get", "1", "--repo", str(missing)), "is not a regular file")
    folder = tmp_path / "folder_config"
    (folder / "feature_store.yaml").mkdir(parents=True)
    _refused(_run("features", "apply", "--repo", str(folder)), "is not a regular file")


# ------------------------------------------------------------------------------ --table


@pytest.fixture(scope="module")
def frame() -> Any:
    """A credit-risk table whose ids rise with event time: the smallest ids are the earliest, so
    a store materialized from the median on does not serve them."""
    table = data.generate(ROWS, 5).sort_values(schema.TIMESTAMP, kind="stable")
    table[schema.ENTITY] = range(100_000, 100_000 + ROWS)
    return table.reset_index(drop=True)


def _bad_table(tmp_path: Path, frame: Any, kind: str) -> Path:
    path = tmp_path / f"{kind}.parquet"
    bad = frame.copy()
    if kind == "random":
        path.write_bytes(os.urandom(500))
    elif kind == "csv_named_parquet":
        frame.to_csv(path, index=False)
    elif kind == "csv_garbage":
        path = tmp_path / "garbage.csv"
        path.write_bytes(b"\xff\xfe\x00" + os.urandom(200))
    elif kind == "csv_text":
        path = tmp_path / "text.csv"
        path.write_text("name,value\nx,1\n")
    elif kind == "folder":
        path.mkdir()
    elif kind == "no_age":
        bad.drop(columns=["age"]).to_parquet(path)
    elif kind == "string_ids":
        bad[schema.ENTITY] = bad[schema.ENTITY].astype(str)
        bad.to_parquet(path)
    elif kind == "negative_ids":
        bad[schema.ENTITY] = -bad[schema.ENTITY]
        bad.to_parquet(path)
    elif kind == "string_times":
        bad[schema.TIMESTAMP] = bad[schema.TIMESTAMP].astype(str)
        bad.to_parquet(path)
    elif kind == "text_feature":
        bad["income"] = bad["income"].astype(str) + "x"
        bad.to_parquet(path)
    elif kind == "empty":
        bad.iloc[:0].to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("random", "is not a Parquet file (Could not open Parquet input source"),
        ("csv_named_parquet", "is not a Parquet file"),
        ("csv_garbage", "garbage.csv is not a readable CSV file ('utf-8' codec can't decode"),
        ("csv_text", "text.csv: the table lacks the feature-store columns ['customer_id', "),
        ("folder", "is not a regular file"),
        ("missing", "no such file"),
        ("no_age", "the table lacks the feature-store columns ['age']"),
        ("string_ids", "column customer_id is object, not integers"),
        ("negative_ids", "column customer_id holds -"),
        ("string_times", "column event_timestamp is object, not date-times"),
        ("text_feature", "feature columns are not numeric: {'income': 'object'}"),
        ("empty", "the table has no rows"),
    ],
)
def test_a_bad_table_is_refused_naming_the_file_and_what_was_expected(
    kind: str, fragment: str, tmp_path: Path, frame: Any
) -> None:
    table = _bad_table(tmp_path, frame, kind) if kind != "missing" else tmp_path / "x.parquet"
    state = tmp_path / "state"
    line = _refused(
        _run("features", "apply", "--table", str(table), "--repo", str(state)), fragment
    )
    assert str(table) in line and line.endswith(f"expected {fs.TABLE_EXPECTED}")
    assert not state.exists()  # refused before the store is created


# ------------------------------------------------------- stores: materialize and get facts


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, frame: Any) -> Path:
    """A store applied through the CLI (from a CSV: the other format apply takes), never
    materialized."""
    folder = tmp_path_factory.mktemp("applied")
    table = folder / "table.csv"
    frame.to_csv(table, index=False)
    result = _run("features", "apply", "--table", str(table), "--repo", str(folder / "store"))
    assert result.exit_code == 0, result.output
    assert f"{ROWS} rows written" in result.output
    return folder / "store"


@pytest.fixture(scope="module")
def partial(applied: Path, tmp_path_factory: pytest.TempPathFactory, frame: Any) -> Path:
    """A copy of ``applied`` materialized from the median event time on: half the customers."""
    store = tmp_path_factory.mktemp("partial") / "store"
    shutil.copytree(applied, store)
    start = frame[schema.TIMESTAMP].sort_values().iloc[ROWS // 2].isoformat()
    result = _run("features", "materialize", "--start", start, "--repo", str(store))
    assert result.exit_code == 0 and result.output.count("loaded") == 3, result.output
    return store


def test_get_before_any_materialize_says_so_and_lists_no_ids(applied: Path, frame: Any) -> None:
    known = str(int(frame[schema.ENTITY].iloc[0]))
    for entity in (known, "5"):
        line = _refused(
            _run("features", "get", entity, "--repo", str(applied)),
            "nothing materialized yet in feature views credit_bureau, customer_profile, "
            "loan_application, so no customer has online features there: run "
            "`sovml features materialize` first",
        )
        assert "known ids" not in line


def test_an_unknown_model_is_refused_listing_the_known_ones(applied: Path) -> None:
    result = _run("features", "get", "1", "--model", "nope", "--repo", str(applied))
    _refused(result, "unknown model 'nope'; known models: credit_risk")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["--start", "2025-06-01", "--end", "2025-01-01"],
            "--start 2025-06-01 00:00:00 UTC is not before --end 2025-01-01 00:00:00 UTC",
        ),
        (
            ["--start", "2025-03-01T00:00:00+01:00", "--end", "2025-02-28T23:00:00"],
            "--start 2025-02-28 23:00:00 UTC is not before --end 2025-02-28 23:00:00 UTC",
        ),
        (["--start", "2200-01-01"], "--start 2200-01-01 00:00:00 UTC is not before the data's end"),
        (["--end", "2001-01-01"], "--end 2001-01-01 00:00:00 UTC is not after the data's first"),
        (["--start", "0001-01-01T00:00:00"], "--start 0001-01-01 00:00:00 UTC is out of range"),
        (["--end", "9999-12-31"], "allowed 1678-01-01 00:00:00 UTC to 2262-01-01 00:00:00 UTC"),
        (["--start", "yesterday"], "--start 'yesterday' is not an ISO 8601 date/time"),
        (["--view", "credit_score"], "unknown feature view 'credit_score'; known feature views"),
    ],
)
def test_materialize_refuses_empty_or_impossible_intervals(
    applied: Path, args: list[str], fragment: str
) -> None:
    _refused(_run("features", "materialize", *args, "--repo", str(applied)), fragment)
    views = fs.open_store(applied).list_feature_views()
    assert all(v.most_recent_end_time is None for v in views)  # nothing was loaded


def test_an_id_outside_the_materialized_range_is_told_so(partial: Path, frame: Any) -> None:
    first = frame.sort_values(schema.TIMESTAMP).iloc[0]
    entity = str(int(first[schema.ENTITY]))
    _refused(
        _run("features", "get", entity, "--repo", str(partial)),
        f"no online features for customer {entity} in feature views credit_bureau, "
        "customer_profile, loan_application: it is in the offline source, but its events lie "
        "outside the materialized range",
    )


def test_the_ids_an_unknown_id_error_lists_are_all_servable(partial: Path) -> None:
    line = _refused(_run("features", "get", "5", "--repo", str(partial)), "known ids are e.g. ")
    shown = line.split("known ids are e.g. ")[1].removesuffix(", ...").split(", ")
    # The offline source's smallest ids lie before the materialized range: none may be shown.
    assert shown == [str(100_000 + ROWS // 2 + i) for i in range(5)]
    for entity in shown:
        result = _run("features", "get", entity, "--repo", str(partial), "--json")
        assert result.exit_code == 0, (entity, result.output)


# ------------------------------------------------------------------------------- serve


@pytest.fixture
def no_triton(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Triton unavailable: any input that passes the checks ends in exit 3, not 2."""
    monkeypatch.setenv("SOVML_TRITON_VENV", str(tmp_path / "no-venv"))


def _model(root: Path, name: str = "m", version: int = 1, backend: str = "python") -> Path:
    """A model folder with a config and placeholder files (the checks never load them)."""
    config = serving_repo.ModelConfig(
        name,
        backend,
        "features__0",
        8,
        "probability__0",
        1,
        8,
        True,
        1,
        parameters=serving_repo.python_parameters() if backend == "python" else (),
    )
    version_dir = root / name / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    (root / name / "config.pbtxt").write_text(serving_repo.render_model_config(config))
    names = (
        ["model.py", "model.pt"]
        if backend == "python"
        else [serving_repo.MODEL_FILES["pytorch" if backend == "libtorch" else "onnxruntime"]]
    )
    for file in names:
        (version_dir / file).write_text("placeholder")
    return root


def test_serve_without_triton_exits_3(tmp_path: Path, no_triton: None) -> None:
    repo = _model(tmp_path / "repo")
    _refused(_run("serve", str(repo), "--once"), "Triton is not available: ", code=3)


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "1e9", "3600.5"])
def test_serve_refuses_a_ready_timeout_out_of_range(
    value: str, tmp_path: Path, no_triton: None
) -> None:
    repo = _model(tmp_path / "repo")
    result = _run("serve", str(repo), "--once", "--ready-timeout", value)
    _refused(result, "is out of range; allowed: seconds, more than 0 and at most 3600")
    assert result.output.startswith("error: --ready-timeout ")


def test_serve_accepts_the_largest_ready_timeout(tmp_path: Path, no_triton: None) -> None:
    repo = _model(tmp_path / "repo")
    _refused(_run("serve", str(repo), "--ready-timeout", "3600"), "Triton is not", code=3)


def test_serve_refuses_a_log_file_it_cannot_write(tmp_path: Path, no_triton: None) -> None:
    repo = _model(tmp_path / "repo")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    for log, fragment in (
        (tmp_path, f"--log-file {tmp_path} is a folder; give a file path"),
        (plain / "triton.log", f"--log-file {plain / 'triton.log'}: {plain} is a file, not a"),
        (plain / "a" / "b.log", f"{plain} is a file, not a folder"),
        (fifo, f"--log-file {fifo} is not a regular file"),
    ):
        _refused(_run("serve", str(repo), "--once", "--log-file", str(log)), fragment)
    # A new file in a new folder is fine (made at start): the run gets as far as Triton.
    fresh = tmp_path / "logs" / "new" / "triton.log"
    _refused(_run("serve", str(repo), "--log-file", str(fresh)), "Triton is not", code=3)


def test_an_unwritable_log_location_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, which may write anywhere: the permission answer is simulated.
    monkeypatch.setattr("pipelines.serving.triton.os.access", lambda *_args: False)
    with pytest.raises(ServingInputError, match=f"cannot create files in {tmp_path}$"):
        check_log_path(tmp_path / "triton.log")
    existing = tmp_path / "old.log"
    existing.write_text("")
    with pytest.raises(ServingInputError, match=r"old\.log is not writable"):
        check_log_path(existing)


def test_a_python_version_without_model_py_is_refused_up_front(
    tmp_path: Path, no_triton: None
) -> None:
    repo = _model(tmp_path / "repo")
    (repo / "m" / "1" / "model.py").unlink()
    _refused(
        _run("serve", str(repo), "--once"),
        f"model 'm' version 1: {repo / 'm' / '1' / 'model.py'} is missing "
        "(the python backend's model file)",
    )


def test_verify_without_model_pt_is_refused_before_starting(
    tmp_path: Path, no_triton: None
) -> None:
    repo = _model(tmp_path / "repo")
    # The config serves other.pt, so the layout is complete; --verify still needs model.pt.
    config = repo / "m" / "config.pbtxt"
    config.write_text(config.read_text().replace('"model.pt"', '"other.pt"'))
    (repo / "m" / "1" / "model.pt").rename(repo / "m" / "1" / "other.pt")
    _refused(_run("serve", str(repo), "--once"), "Triton is not", code=3)
    _refused(
        _run("serve", str(repo), "--once", "--verify"),
        f"--verify: model 'm' version 1: {repo / 'm' / '1' / 'model.pt'} is missing",
    )


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [
        ("no_versions", "model 'm': no version folder in "),
        ("word_version", "model 'm': no version folder in "),
        ("no_config", "model 'm': "),
        ("libtorch", "model 'm' version 1: "),
        ("default_name", "custom.bin is missing (the config's default_model_filename"),
        ("specific", "model 'm': version 4 (named by its version_policy) has no folder"),
        ("config_folder", "config.pbtxt is not a regular file"),
    ],
)
def test_repository_layout_faults_name_model_version_and_file(
    breakage: str, fragment: str, tmp_path: Path, no_triton: None
) -> None:
    repo = _model(tmp_path / "repo", backend="libtorch" if breakage == "libtorch" else "python")
    model, config = repo / "m", repo / "m" / "config.pbtxt"
    if breakage in ("no_versions", "word_version"):
        shutil.rmtree(model / "1")
        if breakage == "word_version":
            (model / "latest").mkdir()
    elif breakage == "no_config":
        config.unlink()
    elif breakage == "libtorch":
        (model / "1" / "model.pt").unlink()
    elif breakage == "default_name":
        config.write_text(config.read_text() + 'default_model_filename: "custom.bin"\n')
    elif breakage == "specific":
        text = config.read_text().replace(
            "latest: { num_versions: 1 }", "specific { versions: [1, 4] }"
        )
        config.write_text(text)
    elif breakage == "config_folder":
        config.unlink()
        config.mkdir()
    args = ["serve", str(repo), "--once"] + (["--model", "m"] if "config" in breakage else [])
    line = _refused(_run(*args), fragment)
    if breakage == "no_config":
        assert f"{config} not found" in line
    if breakage == "libtorch":
        assert line.endswith(
            f"{model / '1' / 'model.pt'} is missing (the pytorch backend's model file)"
        )


def test_only_the_versions_triton_serves_are_checked(tmp_path: Path, no_triton: None) -> None:
    repo = _model(tmp_path / "repo", version=1)
    _model(repo, version=2)
    (repo / "m" / "1" / "model.py").unlink()  # an old version Triton will not load (latest 1)
    _refused(_run("serve", str(repo), "--once"), "Triton is not", code=3)
    config = repo / "m" / "config.pbtxt"
    config.write_text(config.read_text().replace("latest: { num_versions: 1 }", "all { }"))
    _refused(_run("serve", str(repo), "--once"), "model 'm' version 1: ")


def test_serve_names_unknown_models_and_the_ones_there(tmp_path: Path, no_triton: None) -> None:
    repo = _model(tmp_path / "repo", name="a")
    _model(repo, name="b")
    _refused(
        _run("serve", str(repo), "-m", "nope"), f"model 'nope' is not in {repo}; models there: a, b"
    )
    _refused(_run("serve", str(repo), "-m", "../repo"), "model name '../repo' is not a folder")
    _refused(_run("serve", str(tmp_path / "none")), "model repository not found: ")
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(_run("serve", str(empty)), f"{empty}: no model folder with a config.pbtxt")
