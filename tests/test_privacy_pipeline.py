"""No raw identifier survives ingest: one local pipeline run, every file it wrote scanned.

The run (kfp.local: the session's shared run, which ``tests/test_training_pipeline.py`` reads too)
ingests generated data with Emirates IDs, names, phones, e-mails and free-text notes, trains,
exports and encrypts. Then every file under its output folder (dataset, train/test sets, Feast
offline source, registry and online SQLite store, model files, both Triton repositories, lineage
and metadata JSON, logs) is read, Parquet decoded and zip/gzip members opened, and searched for
every raw identifier in every spelling the data uses (and its digits only): none may appear. The
scanner is shown to find them in the raw table first, so the test can fail.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from pipelines.privacy import recognizers
from pipelines.training import data, local_run
from pipelines.training.steps.dataset import PRIVACY_METADATA_KEY
from tests.conftest import TRAINING_ARGS

pytestmark = pytest.mark.slow

ARGS = TRAINING_ARGS


def needles(rows: int, seed: int) -> set[bytes]:
    """Every raw identifier of the generated table, in each spelling that could leak."""
    frame = data.generate(rows, seed, identifiers=True)
    found: set[str] = set()
    for value in frame["national_id"]:
        number = recognizers.digits(value)
        found |= {number, f"{number[:3]}-{number[3:7]}-{number[7:14]}-{number[14]}"}
    for value in frame["phone"]:
        e164 = recognizers.phone(value)
        assert e164 is not None
        found |= {value, e164, e164[1:], "0" + e164[4:], e164[4:]}
    for value in frame["email"]:
        found |= {value, value.lower(), value.upper()}
    for value in frame["full_name"]:
        found |= {value, value.lower(), value.upper()}
    return {n.encode() for n in found}


def texts(path: Path) -> list[bytes]:
    """The bytes of a file as stored and as decoded (Parquet cells, zip and gzip members)."""
    raw = path.read_bytes()
    out = [raw]
    if raw[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        out.append(str(table.schema.metadata).encode())
        out += ["\n".join(map(str, c.to_pylist())).encode() for c in table.columns]
    elif raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            out += [archive.read(name) for name in archive.namelist()]
    elif raw[:2] == b"\x1f\x8b":
        out.append(gzip.decompress(raw))
    return out


TOKEN = re.compile(rb"pz_[0-9a-f]{32}")
"""A pseudonym (HMAC hex): taken out before the scan, since 32 random hex digits hold an 8-digit
phone fragment by chance in about one run in ten (seen once: 22258422 inside a token)."""


def leaks(root: Path, wanted: set[bytes]) -> dict[str, list[str]]:
    """File -> raw identifiers found in it (first few).

    One Aho-Corasick automaton over every needle (pyahocorasick): a pass over each blob finds all
    of them at once, where a substring test per needle cost 26,000 passes (two minutes here).
    """
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for needle in wanted:
        text = needle.decode("latin-1")  # byte-for-byte: each byte one character
        automaton.add_word(text, text)
    automaton.make_automaton()
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hits = {
            match.encode("latin-1").decode()
            for blob in texts(path)
            for _, match in automaton.iter(TOKEN.sub(b"pz_", blob).decode("latin-1"))
        }
        if hits:
            found[path.relative_to(root).as_posix()] = sorted(hits)[:3]
    return found


@pytest.fixture(scope="module")
def run(
    training_run: local_run.RunResult, training_workdir: Path
) -> tuple[local_run.RunResult, Path]:
    """The session's local pipeline run (generated data with identifiers) and its folder."""
    return training_run, training_workdir


def test_the_scanner_finds_identifiers_in_a_raw_table(tmp_path: Path) -> None:
    wanted = needles(ARGS["rows"], ARGS["seed"])
    raw = data.generate(ARGS["rows"], ARGS["seed"], identifiers=True)
    data.write_table(raw, tmp_path / "raw.parquet")  # zstd-compressed: found only decoded
    with zipfile.ZipFile(tmp_path / "raw.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notes.txt", "\n".join(raw["notes"]))
    found = leaks(tmp_path, wanted)
    assert set(found) == {"raw.parquet", "raw.zip"}


def test_no_raw_identifier_in_any_output_file(run: tuple[local_run.RunResult, Path]) -> None:
    result, out = run
    assert result.succeeded, result.errors
    assert result.gate_passed, result.gate_reason
    assert result.model_repository is not None and result.encrypted is not None
    files = [p for p in out.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    # The scan covers what matters: tables, the online store, models, configs, lineage, logs.
    assert {".parquet", ".db", ".pt", ".pbtxt", ".json", ".log"} <= kinds, kinds
    assert leaks(out, needles(ARGS["rows"], ARGS["seed"])) == {}


def test_the_dataset_records_what_was_pseudonymized(run: tuple[local_run.RunResult, Path]) -> None:
    result, _ = run
    assert result.run_dir is not None
    dataset = next(result.run_dir.glob("ingest/dataset*"))
    report = data.table_metadata(dataset, PRIVACY_METADATA_KEY)
    assert {k: v["kind"] for k, v in report["identifier_columns"].items()} == {
        "national_id": "emirates_id",
        "full_name": "name",
        "phone": "phone",
        "email": "email",
    }
    replaced = report["scanned_columns"]["notes"]["replaced"]
    assert set(replaced) == {"emirates_id", "phone", "email", "name"}
    assert report["key"]["backend"] == "local" and report["key"]["key_id"].startswith("local-")
    table = data.read_table(dataset)
    assert table["national_id_token"].str.fullmatch(r"pz_[0-9a-f]{32}").all()
    # The lineage carries the same report beside the model (no value: the leak scan covers it).
    assert result.lineage_record is not None
    lineage = json.loads(result.lineage_record.read_text())
    assert lineage["privacy"] == report
