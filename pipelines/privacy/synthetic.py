"""Synthetic people: the raw direct identifiers a real extract carries, for tests and the demo.

Every value is made up (e-mail domains are the reserved ``example.*`` ones); Emirates IDs carry
valid check digits and phone numbers follow the UAE numbering plan, so the recognizers of
:mod:`pipelines.privacy.recognizers` treat them exactly like real ones. The formats vary from row
to row (dashes or not, ``+971``/``00971``/``0``), and the free-text ``notes`` repeat a row's
identifiers in another format, as a clerk would type them.
"""

from __future__ import annotations

import numpy as np

from pipelines.privacy.recognizers import luhn_check_digit

IDENTIFIER_COLUMNS = ("national_id", "full_name", "phone", "email", "notes")
"""The columns :func:`identities` returns, in order."""

_FIRST = (
    ("Fatima", "فاطمة"),
    ("Mohammed", "محمد"),
    ("Aisha", "عائشة"),
    ("Omar", "عمر"),
    ("Mariam", "مريم"),
    ("Khalid", "خالد"),
    ("Noura", "نورة"),
    ("Rashid", "راشد"),
    ("Layla", "ليلى"),
    ("Hamdan", "حمدان"),
    ("Priya", None),
    ("Arjun", None),
    ("Maria", None),
    ("Jose", None),
    ("Emma", None),
    ("Liam", None),
)
"""First names: Latin spelling and, where common, Arabic script."""
_FAMILY = (
    ("Al Mansoori", "المنصوري"),
    ("Al Nuaimi", "النعيمي"),
    ("Al Ketbi", "الكتبي"),
    ("Al Suwaidi", "السويدي"),
    ("Al Falasi", "الفلاسي"),
    ("Al Shamsi", "الشامسي"),
    ("Haddad", "حداد"),
    ("Nair", None),
    ("Menon", None),
    ("Santos", None),
    ("Reyes", None),
    ("O'Brien", None),
    ("Smith", None),
)
_MOBILE = ("50", "52", "54", "55", "56", "58")
_AREA = ("2", "3", "4", "6", "7", "9")
_DOMAINS = ("example.com", "example.ae", "example.org")


def identities(rng: np.random.Generator, age: np.ndarray, year: int) -> dict[str, list[str]]:
    """One synthetic person per row: :data:`IDENTIFIER_COLUMNS` as lists of strings.

    Args:
        rng: The only source of randomness (its own stream: see ``pipelines.training.data``).
        age: Each row's age; the ID's year group is the birth year, as it often is.
        year: The reference year (birth year = year - age).
    """
    n = len(age)
    # Unique 7-digit serials: each row its own slot of the range, at a random place in it.
    step = max(1, 10**7 // max(n, 1))
    serial = (rng.permutation(n) * step + rng.integers(0, step, n)) % 10**7
    first = rng.integers(0, len(_FIRST), n)
    family = rng.integers(0, len(_FAMILY), n)
    arabic = rng.uniform(0, 1, n) < 0.2
    dashed = rng.uniform(0, 1, n) < 0.7
    mobile = rng.uniform(0, 1, n) < 0.8
    phone_form = rng.integers(0, 4, n)
    prefix = rng.integers(0, len(_MOBILE), n)
    area = rng.integers(0, len(_AREA), n)
    line = rng.integers(0, 10**7, n)
    domain = rng.integers(0, len(_DOMAINS), n)
    suffix = rng.integers(1, 100, n)
    note_kind = rng.integers(0, 10, n)
    columns: dict[str, list[str]] = {name: [] for name in IDENTIFIER_COLUMNS}
    for i in range(n):
        digits = f"784{year - int(age[i]):04d}{int(serial[i]):07d}"
        digits += luhn_check_digit(digits)
        dashes = f"{digits[:3]}-{digits[3:7]}-{digits[7:14]}-{digits[14]}"
        (latin_first, arabic_first), (latin_family, arabic_family) = (
            _FIRST[first[i]],
            _FAMILY[family[i]],
        )
        use_arabic = bool(arabic[i]) and arabic_first is not None and arabic_family is not None
        name = f"{arabic_first} {arabic_family}" if use_arabic else f"{latin_first} {latin_family}"
        subscriber = f"{int(line[i]):07d}"
        if mobile[i]:
            national = _MOBILE[prefix[i]]
            forms = (
                f"+971 {national} {subscriber[:3]} {subscriber[3:]}",
                f"0{national}-{subscriber[:3]}-{subscriber[3:]}",
                f"00971{national}{subscriber}",
                f"0{national}{subscriber}",
            )
        else:
            national = _AREA[area[i]]
            forms = (
                f"0{national} {subscriber[:3]} {subscriber[3:]}",
                f"+971 {national} {subscriber[:3]} {subscriber[3:]}",
                f"0{national}{subscriber}",
                f"00971 {national} {subscriber}",
            )
        handle = f"{latin_first}.{latin_family}".lower().replace(" ", "").replace("'", "")
        mail = f"{handle}{int(suffix[i])}@{_DOMAINS[domain[i]]}"
        columns["national_id"].append(dashes if dashed[i] else digits)
        columns["full_name"].append(name)
        columns["phone"].append(forms[phone_form[i]])
        columns["email"].append(mail)
        columns["notes"].append(
            _note(int(note_kind[i]), dashes if not dashed[i] else digits, forms, name, mail)
        )
    return columns


def _note(kind: int, other_id: str, phones: tuple[str, ...], name: str, mail: str) -> str:
    """A clerk's note: about half hold one of the row's identifiers, in another format."""
    if kind == 0:
        return f"KYC: Emirates ID {other_id} verified at the branch."
    if kind == 1:
        return f"Customer called from {phones[(kind + 1) % 4]} about the limit."
    if kind == 2:
        return f"Statement e-mailed to {mail.upper()}; no reply yet."
    if kind == 3:
        return f"Spoke with {name} about a repayment plan."
    if kind == 4:
        return f"{name} ({phones[3]}) asked for a card replacement, ID {other_id}."
    return ("No issues reported.", "Salary transfer confirmed.", "Address updated.")[kind % 3]
