"""The identifier recognizers: Emirates IDs with their check digit, UAE phones, e-mails, names."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.privacy import recognizers as rec

ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def valid_id(body: str) -> str:
    """An Emirates ID (15 digits) from its 11 digits after 784: the check digit computed."""
    payload = "784" + body
    return payload + rec.luhn_check_digit(payload)


def dashed(number: str) -> str:
    return f"{number[:3]}-{number[3:7]}-{number[7:14]}-{number[14]}"


digits11 = st.text(alphabet="0123456789", min_size=11, max_size=11)


@settings(max_examples=200, deadline=None)
@given(body=digits11)
def test_every_id_with_its_check_digit_is_found_in_both_forms(body: str) -> None:
    number = valid_id(body)
    assert rec.emirates_id(number) == number
    assert rec.emirates_id(dashed(number)) == number
    assert rec.emirates_id(f"  {dashed(number).replace('-', ' ')} ") == number
    assert [(f.kind, f.canonical) for f in rec.find(f"id:{dashed(number)}.")] == [
        ("emirates_id", number)
    ]


@settings(max_examples=200, deadline=None)
@given(body=digits11, wrong=st.integers(1, 9))
def test_a_wrong_check_digit_is_not_an_emirates_id(body: str, wrong: int) -> None:
    number = valid_id(body)
    broken = number[:-1] + str((int(number[-1]) + wrong) % 10)
    assert rec.emirates_id(broken) is None
    assert rec.emirates_id(dashed(broken)) is None
    # In free text a 15-digit run that is no valid ID is still a long number: replaced anyway.
    assert [f.kind for f in rec.find(f"ref {broken}")] == ["number"]


def test_known_check_digit_and_luhn() -> None:
    # Checked by hand: from the right, the doubled digits 7 5 3 1 9 1 8 add up (digit sums) to
    # 5+1+6+2+9+2+7 = 32, the others 6 6 4 2 0 9 4 7 to 38; 70 is a multiple of 10.
    assert rec.luhn_valid("784199012345676")
    assert not rec.luhn_valid("784199012345677")
    assert rec.luhn_check_digit("78419901234567") == "6"
    assert not rec.luhn_valid("") and not rec.luhn_valid("12a4")


@pytest.mark.parametrize(
    "text",
    [
        "784\u20131990\u20131234567\u20136",  # en dashes
        "784 - 1990 - 1234567 - 6",
        "784.1990.1234567.6",
        "784/1990/1234567/6",
        "٧٨٤-١٩٩٠-١٢٣٤٥٦٧-٦",  # Arabic-Indic digits
    ],
)
def test_odd_separators_and_arabic_digits(text: str) -> None:
    assert rec.emirates_id(text) == "784199012345676"


@pytest.mark.parametrize(
    "text",
    [
        "785-1990-1234567-6",  # not 784
        "784-1990-123456-6",  # 14 digits
        "7841990123456761",  # 16 digits
        "x784199012345676",  # glued to a word
    ],
)
def test_not_emirates_ids(text: str) -> None:
    assert rec.emirates_id(text) is None


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("+971 50 123 4567", "+971501234567"),
        ("00971501234567", "+971501234567"),
        ("00971 50 1234567", "+971501234567"),
        ("0501234567", "+971501234567"),
        ("050-123-4567", "+971501234567"),
        ("+971 (0) 50 123 4567", "+971501234567"),
        ("04 123 4567", "+97141234567"),
        ("+971 2 123 4567", "+97121234567"),
        ("09-1234567", "+97191234567"),
    ],
)
def test_uae_phone_forms(text: str, e164: str) -> None:
    assert rec.phone(text) == e164
    assert [(f.kind, f.canonical) for f in rec.find(f"call {text}, thanks")] == [("phone", e164)]


@pytest.mark.parametrize(
    "text",
    ["050123456", "05012345678", "01 123 4567", "08 123 4567", "+972 50 123 4567", "12345"],
)
def test_not_uae_phones(text: str) -> None:
    assert rec.phone(text) is None


def test_emails() -> None:
    assert rec.email("Fatima.Al-Nuaimi+bank@Example.AE") == "fatima.al-nuaimi+bank@example.ae"
    assert rec.email("omar @ example.com") == "omar@example.com"
    assert rec.email("موظف@مثال.امارات") == "موظف@مثال.امارات"
    for bad in ("omar@", "@example.com", "omar@example", "omar example.com"):
        assert rec.email(bad) is None


@pytest.mark.parametrize(
    "text",
    [
        "Fatima Al Mansoori",
        "Mohammed bin Rashid Al Maktoum",
        "Liam O'Brien",
        "Noura Al-Ketbi",
        "FATIMA AL MANSOORI",
        "محمد المنصوري",
    ],
)
def test_name_shaped_values(text: str) -> None:
    assert rec.looks_like_name(text)


@pytest.mark.parametrize(
    "text", ["Abu Dhabi", "fatima al mansoori", "Fatima", "paid 300 AED", "A B C D E F", ""]
)
def test_not_name_shaped(text: str) -> None:
    assert not rec.looks_like_name(text)


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("full_name", "name"),
        ("CustomerName", "name"),
        ("الاسم", "name"),
        ("national_id", "emirates_id"),
        ("EmiratesID", "emirates_id"),
        ("mobile_no", "phone"),
        ("e_mail", "email"),
        ("notes", None),
        ("filename", None),
        ("customer_id", None),
    ],
)
def test_column_names_that_announce_a_kind(column: str, kind: str | None) -> None:
    assert rec.kind_of_column_name(column) == kind


def test_free_text_with_every_kind_in_order() -> None:
    number = "784199012345676"
    text = (
        f"Name on file; ID {number} / phone +971-50-123-4567, mail X.Y@Example.com, "
        "acct 1234 5678 901, date 2025-01-15, amount 12,500.00"
    )
    found = list(rec.find(text))
    assert [(f.kind, f.canonical) for f in found] == [
        ("emirates_id", number),
        ("phone", "+971501234567"),
        ("email", "x.y@example.com"),
        ("number", "12345678901"),
    ]
    # The spans are exactly the identifiers: the date and the amount stay.
    assert [text[f.start : f.end] for f in found][-1] == "1234 5678 901"


def test_digits_reads_arabic_indic() -> None:
    assert rec.digits("٧٨٤-١٩") == "78419"
    assert "784199012345676".translate(ARABIC_DIGITS) == "٧٨٤١٩٩٠١٢٣٤٥٦٧٦"
