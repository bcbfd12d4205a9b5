"""Pseudonymizing a table: tokens, column classification (deny by default), attacker inputs."""

from __future__ import annotations

import json
import secrets

import numpy as np
import pandas as pd
import pytest

from pipelines.privacy import tables
from pipelines.privacy.tokens import Pseudonymizer, PseudonymKey
from pipelines.training import data, schema
from pipelines.training.steps.dataset import DECLARED

ID = "784199012345676"
ID_DASHED = "784-1990-1234567-6"
ID2 = "784198512345672"  # Luhn-valid as well
PHONE = "+971 50 123 4567"
MAIL = "Fatima.AlMansoori@example.ae"
NAME = "Fatima Al Mansoori"
TOKEN = r"pz_[0-9a-f]{32}"


def pseudonymizer(key: bytes | None = None) -> Pseudonymizer:
    return Pseudonymizer(PseudonymKey(key or b"k" * 32, "local", "local-test", "1"))


def base(rows: int = 4) -> pd.DataFrame:
    return data.generate(rows, 5)


def run(frame: pd.DataFrame, key: bytes | None = None) -> tuple[pd.DataFrame, dict]:
    return tables.pseudonymize_table(frame, pseudonymizer(key), DECLARED)


def test_tokens_are_deterministic_and_keyed() -> None:
    one, same, other = pseudonymizer(b"a" * 32), pseudonymizer(b"a" * 32), pseudonymizer()
    assert one.token("phone", "+971501234567") == same.token("phone", "+971501234567")
    assert one.token("phone", "+971501234567") != other.token("phone", "+971501234567")
    # Kinds are separate domains: the same digits as a phone and as a number differ.
    assert one.token("phone", "971501234567") != one.token("number", "971501234567")
    assert len(one.token("email", "a@b.cd")) == 3 + 32
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymizer(PseudonymKey(b"short", "local", "x", "1"))
    assert "material" not in repr(one.key) and "aaaa" not in repr(one.key)


def test_the_same_person_gets_one_token_in_every_format_and_column() -> None:
    frame = base().assign(
        national_id=[ID, ID_DASHED, ID2, None],
        mobile=[PHONE, "0501234567", "00971501234567", "04 123 4567"],
        notes=[f"ID {ID_DASHED}", "call 050-123-4567", "", None],
    )
    out, report = run(frame)
    ids = out["national_id_token"].tolist()
    assert ids[0] == ids[1] != ids[2] and ids[3] is None
    phones = out["mobile_token"].tolist()
    assert phones[0] == phones[1] == phones[2] != phones[3]
    assert out["notes"].tolist() == [f"ID {ids[0]}", f"call {phones[0]}", "", None]
    assert report["identifier_columns"] == {
        "national_id": {"kind": "emirates_id", "column": "national_id_token", "values": 3},
        "mobile": {"kind": "phone", "column": "mobile_token", "values": 4},
    }
    assert report["scanned_columns"] == {"notes": {"replaced": {"emirates_id": 1, "phone": 1}}}


def test_schema_columns_and_values_are_untouched() -> None:
    frame = base(50)
    out, report = run(frame.assign(notes="nothing personal"))
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame)
    assert report["identifier_columns"] == {} and report["dropped_columns"] == {}


def test_a_different_key_gives_different_tokens() -> None:
    frame = base().assign(email=[MAIL] * 4)
    one, _ = run(frame, b"1" * 32)
    two, _ = run(frame, b"2" * 32)
    assert one["email_token"][0] != two["email_token"][0]


def test_columns_that_cannot_be_classified_are_dropped_and_noted() -> None:
    frame = base().assign(
        blob=[b"\x00", b"x", None, b"y"],
        mixed=["a", 1, None, "b"],
        flag=[True, False, True, True],
        seen=pd.to_datetime(["2025-01-01"] * 4),
        score=[0.5, 0.1, 0.2, 0.3],
    )
    out, report = run(frame)
    assert "blob" not in out and "mixed" not in out
    assert report["dropped_columns"] == {
        "blob": "cannot be classified: holds bytes values",
        "mixed": "cannot be classified: holds int values",
    }
    assert out["flag"].tolist() == frame["flag"].tolist()
    assert out["score"].tolist() == frame["score"].tolist()
    assert "seen" in out


def test_name_column_by_values_and_names_in_free_text() -> None:
    frame = base().assign(
        who=[NAME, "محمد المنصوري", "Liam O'Brien", "Noura Al-Ketbi"],
        notes=[f"spoke with {NAME.upper()}.", "محمد المنصوري زار الفرع", "Liam called", "x"],
    )
    out, report = run(frame)
    assert report["identifier_columns"]["who"]["kind"] == "name"
    who = out["who_token"].tolist()
    assert out["notes"][0] == f"spoke with {who[0]}."
    assert out["notes"][1] == f"{who[1]} زار الفرع"
    # A lone first name is not a full name: the known limit of names in free text.
    assert out["notes"][2] == "Liam called"


def test_identifier_column_by_name_tokenizes_even_invalid_values() -> None:
    frame = base().assign(emirates_id=["n/a", "unknown", "784-1990-1234567-0", None])
    out, report = run(frame)
    assert report["identifier_columns"]["emirates_id"]["kind"] == "emirates_id"
    assert out["emirates_id_token"][:3].str.fullmatch(TOKEN).all()


def test_attacker_identifiers_hidden_in_an_unexpected_column() -> None:
    frame = base().assign(
        x7=[ID, ID2, ID_DASHED, ID],  # innocuous name, values are IDs
        comment=[
            f"ref:{ID_DASHED.replace('-', ' - ')}!",
            f"tel+971-50-123-4567/{MAIL.upper()}",
            "784\u20131990\u20131234567\u20136 in en dashes; ٧٨٤١٩٩٠١٢٣٤٥٦٧٦ in Arabic digits",
            "pin 0000, amount 12,500 AED",
        ],
    )
    out, report = run(frame)
    assert report["identifier_columns"]["x7"]["kind"] == "emirates_id"
    joined = " ".join(out["comment"])
    for raw in ("1990", "1234567", "123 4567", "123-4567", "fatima", "FATIMA", "١٢٣٤٥٦٧"):
        assert raw not in joined, raw
    assert out["comment"][3] == "pin 0000, amount 12,500 AED"
    # Four spellings of one ID, one token: dashes, spaced dashes, en dashes, Arabic digits.
    token = out["x7_token"][0]
    assert out["x7_token"][2] == token
    assert out["comment"][0] == f"ref:{token}!"
    assert out["comment"][2] == f"{token} in en dashes; {token} in Arabic digits"


def test_attacker_identifier_in_a_column_name() -> None:
    frame = base().assign(**{f"balance_{ID_DASHED}": [1.0, 2.0, 3.0, 4.0]})
    out, report = run(frame)
    assert not [c for c in out.columns if "1990" in c or "1234567" in c]
    assert report["renamed_columns"] == 1
    assert ID_DASHED not in json.dumps(report)


def test_attacker_ids_written_as_numbers() -> None:
    frame = base().assign(ref=np.array([int(ID), int(ID2), 12, 971501234567], dtype=np.int64))
    out, report = run(frame)
    assert report["identifier_columns"]["ref"] == {
        "kind": "number",
        "column": "ref_token",
        "values": 4,
    }
    # An ID written as a number gets the token of the same ID written as text.
    text, _ = run(base().assign(national_id=[ID, ID2, ID, ID]))
    assert out["ref_token"][0] == text["national_id_token"][0]


def test_a_declared_numeric_column_holding_ids_is_refused_naming_no_value() -> None:
    frame = base()
    frame[schema.ENTITY] = [int(ID), 1, 2, 3]
    with pytest.raises(tables.PrivacyError) as info:
        run(frame)
    assert str(info.value) == (
        "declared column 'customer_id' holds 1 Emirates ID or phone number(s) written as "
        "numbers; replace them with a surrogate key before ingesting"
    )


def test_a_declared_column_holding_text_is_pseudonymized_and_left_to_validate() -> None:
    frame = base().astype({"age": object})
    frame["age"] = [f"age of {ID}", "40", "41", "42"]
    out, report = run(frame)
    assert ID not in " ".join(out["age"]) and report["scanned_columns"]["age"]


def test_the_report_never_holds_a_value() -> None:
    frame = data.generate(300, 3, identifiers=True)
    out, report = run(frame)
    text = json.dumps(report)
    written = out.to_csv(index=False)
    for column in ("national_id", "full_name", "phone", "email"):
        for value in frame[column]:
            assert value not in text
            assert value not in written
    assert report["key"] == {
        "backend": "local",
        "key_id": "local-test",
        "key_version": "1",
        "algorithm": "HMAC-SHA256, key derived with label sovml-pseudonymization/1",
    }
    assert set(report["recognizers"]) >= {"emirates_id", "phone", "email", "name"}


def test_generated_identifiers_leave_the_schema_columns_byte_identical() -> None:
    plain = data.generate(500, 11)
    with_ids = data.generate(500, 11, identifiers=True)
    pd.testing.assert_frame_equal(with_ids[list(plain.columns)], plain)
    assert list(with_ids.columns[len(plain.columns) :]) == [
        "national_id",
        "full_name",
        "phone",
        "email",
        "notes",
    ]
    assert with_ids["national_id"].is_unique


def test_token_column_collision_is_refused() -> None:
    frame = base().assign(email=[MAIL] * 4, email_token=["pz_" + secrets.token_hex(16)] * 4)
    with pytest.raises(tables.PrivacyError, match="'email' would become 'email_token', a name"):
        run(frame)
