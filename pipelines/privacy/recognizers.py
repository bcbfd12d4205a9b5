"""Validated patterns for the direct identifiers of a UAE data set, and their canonical forms.

Why patterns and not Presidio: Presidio's ``AnalyzerEngine`` needs a spaCy language model that is
published on GitHub, not on PyPI; offline (as here and in a sealed cluster) it stops at start-up
trying to fetch it. Its pattern recognizers for these kinds are regular expressions too (plus the
``phonenumbers`` library), and it has none for the Emirates ID. The README's "Privacy by design"
section has the measurement.

Kinds (:data:`KINDS`), each with a version recorded in the ingest metadata (:data:`VERSIONS`):

* ``emirates_id``: the national identity number, 15 digits ``784-YYYY-NNNNNNN-C``: 784 (the
  UAE's ISO 3166 numeric code), four digits that may but need not be the holder's birth year,
  seven digits, and a check digit computed with the Luhn algorithm over the first 14 (so the 15
  digits pass the Luhn check). Sources: the Emirates Identity Authority's description of the
  number (WAM, 2016-01-17: "a random number consisting of 15 digits ... the last part ... the
  verification number"), and Microsoft Purview's sensitive-information type "U.A.E. identity card
  number" ("Fifteen digits with optional hyphens and must pass the Luhn check"). Hyphens, spaces,
  dots, slashes and Unicode dashes are accepted between the groups, and Arabic-Indic digits.
* ``phone``: UAE numbers of the TDRA national numbering plan: mobile ``05X XXX XXXX`` and
  landline ``0A XXX XXXX`` (area codes 2, 3, 4, 6, 7, 9), each also with ``+971`` or ``00971``
  instead of the leading 0 (and ``+971 (0)``). Canonical form E.164 (``+9715XXXXXXXX``).
* ``email``: ``local@domain.tld`` (Unicode letters allowed), spaces around the ``@`` tolerated.
  Canonical form lower case.
* ``name``: a value shaped like a person's name: 2 to 4 name words (capitalised Latin words, or
  words in Arabic script) plus particles (``bin``, ``al``...). Free text cannot be searched for
  names by a pattern; names are found per column (:func:`looks_like_name`,
  :func:`name_like_column`), and in free text only where they also stand in a name column of
  the same table (see :mod:`pipelines.privacy.tables`).
* ``number``: in free text only, any remaining run of 9 or more digits (with separators): what is
  not recognised above but may still identify someone (an ID in an odd grouping, a foreign phone,
  an account number) is replaced rather than kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = ("emirates_id", "phone", "email", "name", "number")
"""Every kind of identifier a token may stand for."""
VERSIONS: dict[str, str] = {
    "emirates_id": "emirates_id/1 (784-YYYY-NNNNNNN-C, Luhn)",
    "phone": "phone/1 (UAE numbering plan: mobile 05X, landline 02-09, +971/00971)",
    "email": "email/1",
    "name": "name/1 (column values of 2-4 name words, Latin or Arabic script)",
    "number": "number/1 (free text: runs of >= 9 digits)",
    "column_names": "column_names/1",
}
"""Recognizer versions, recorded with each pseudonymized table: bump one when its rule changes."""

_SEP = r"[ \t\-\u2010-\u2015\u2212./]"
"""What may stand between digit groups: space, tab, hyphen, Unicode dashes, minus, dot, slash."""
_GAP = _SEP + r"{0,3}"
# The prefix must read "784" (digits of any script): a separator inside it is not a real form.
EMIRATES_ID = re.compile(
    rf"(?<!\w)[7\u0667][8\u0668][4\u0664]{_GAP}\d{{4}}{_GAP}\d{{7}}{_GAP}\d(?!\w)"
)
PHONE = re.compile(
    r"(?<![\w+])"
    rf"(?:(?:\+|00){_GAP}971{_GAP}(?:\(0\){_GAP})?|0)"
    rf"(?:5\d|[234679]){_GAP}\d(?:{_SEP}{{0,2}}\d){{6}}"
    r"(?!\w)"
)
EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+ ?@ ?[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?!\w)")
NUMBER = re.compile(rf"(?<!\w)\+?\d(?:{_SEP}{{0,2}}\d){{8,}}(?!\w)")
_ORDER = (("emirates_id", EMIRATES_ID), ("email", EMAIL), ("phone", PHONE), ("number", NUMBER))
"""Free-text recognizers, most specific first: a span taken by one is not offered to the next."""

_PARTICLES = frozenset({"al", "el", "bin", "bint", "ibn", "abu", "bu", "de", "da", "van", "von"})
_LATIN_WORD = re.compile(
    r"^[A-Z\u00c0-\u00de](?:[a-z\u00df-\u00ff]+|['\u2019][A-Z][a-z]+|[A-Z\u00c0-\u00de]+)"
    r"(?:-[A-Z\u00c0-\u00de]?[a-z\u00df-\u00ff]+|-[A-Z\u00c0-\u00de]+)*$"
)
"""A capitalised (or all-capitals) Latin name word: ``Fatima``, ``O'Brien``, ``Al-Nuaimi``."""
_ARABIC_WORD = re.compile(r"^[\u0621-\u064a\u066e-\u06d3\u06fa-\u06ff]+$")
_NAME_COLUMN_WORDS = frozenset(
    {
        "name",
        "names",
        "fullname",
        "firstname",
        "lastname",
        "surname",
        "forename",
        "givenname",
        "familyname",
        "middlename",
        "maidenname",
        "customername",
        "applicantname",
        "holder",
        "اسم",
        "الاسم",
    }
)
_KIND_COLUMN_WORDS: dict[str, frozenset[str]] = {
    "emirates_id": frozenset(
        {"eid", "emiratesid", "emirates", "nationalid", "nid", "idnumber", "idno", "passport"}
    ),
    "phone": frozenset({"phone", "mobile", "tel", "telephone", "msisdn", "whatsapp", "cell"}),
    "email": frozenset({"email", "mail", "emailaddress"}),
}


@dataclass(frozen=True)
class Found:
    """One identifier found in a text.

    Attributes:
        kind: One of :data:`KINDS`.
        start: Offset of its first character.
        end: Offset after its last character.
        canonical: Its canonical form (what the token is computed from).
    """

    kind: str
    start: int
    end: int
    canonical: str


def digits(text: str) -> str:
    """The decimal digits of ``text`` as ASCII, in order (Arabic-Indic digits included)."""
    return "".join(str(unicodedata.digit(ch)) for ch in text if ch.isdigit())


def luhn_valid(number: str) -> bool:
    """Whether the ASCII digit string ``number`` passes the Luhn check."""
    if not number.isascii() or not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass the Luhn check."""
    for d in "0123456789":
        if luhn_valid(payload + d):
            return d
    raise AssertionError("unreachable: one of ten digits always completes a Luhn number")


def emirates_id(text: str) -> str | None:
    """The 15 digits of an Emirates ID if ``text`` is exactly one (any grouping), else None."""
    match = EMIRATES_ID.fullmatch(text.strip())
    if match is None:
        return None
    number = digits(match.group())
    return number if len(number) == 15 and luhn_valid(number) else None


def phone(text: str) -> str | None:
    """The E.164 form of a UAE phone number if ``text`` is exactly one, else None."""
    match = PHONE.fullmatch(text.strip())
    return _e164(match.group()) if match else None


def _e164(text: str) -> str | None:
    number = digits(text)
    stripped = text.lstrip()
    if stripped.startswith("+") or number.startswith("00971"):
        number = number.removeprefix("00").removeprefix("971").removeprefix("0")
    elif number.startswith("0"):
        number = number[1:]
    else:
        return None
    if (number.startswith("5") and len(number) == 9) or (
        number[:1] in "234679" and len(number) == 8
    ):
        return f"+971{number}"
    return None


def email(text: str) -> str | None:
    """The lower-cased address if ``text`` is exactly one e-mail address, else None."""
    match = EMAIL.fullmatch(text.strip())
    return match.group().replace(" ", "").lower() if match else None


def looks_like_name(text: str) -> bool:
    """Whether ``text`` is shaped like a person's name: 2-4 name words plus particles."""
    words = re.split(r"[ \u00a0]+", unicodedata.normalize("NFC", text).strip())
    if not 2 <= len(words) <= 8:
        return False
    named = 0
    for word in words:
        core = word.removeprefix("Al-").removeprefix("al-").removeprefix("El-").removeprefix("ال")
        if word.lower() in _PARTICLES:
            continue
        if _LATIN_WORD.match(core) or _ARABIC_WORD.match(word):
            named += 1
        else:
            return False
    return 2 <= named <= 4


def canonical_name(text: str) -> str:
    """Case- and spacing-insensitive form of a name (what its token is computed from)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def canonical_text(text: str) -> str:
    """Canonical form of a value of an identifier column that does not validate as its kind."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def canonical(kind: str, text: str) -> str | None:
    """``text``'s canonical form as ``kind``, or None when it is not one."""
    if kind == "emirates_id":
        return emirates_id(text)
    if kind == "phone":
        return phone(text)
    if kind == "email":
        return email(text)
    if kind == "name":
        return canonical_name(text) if looks_like_name(text) else None
    raise ValueError(f"kind must be one of {KINDS[:4]}, got {kind!r}")


def find(text: str) -> Iterator[Found]:
    """Every identifier in free ``text``, left to right, never overlapping.

    A candidate that matches a pattern but fails validation (an Emirates ID whose check digit is
    wrong) is offered to the next recognizer; the last one, ``number``, takes any long digit run.
    """
    taken: list[tuple[int, int]] = []
    found: list[Found] = []
    for kind, pattern in _ORDER:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            value = _canonical_span(kind, match.group())
            if value is None:
                continue
            taken.append((start, end))
            found.append(Found(kind, start, end, value))
    return iter(sorted(found, key=lambda f: f.start))


def _canonical_span(kind: str, span: str) -> str | None:
    if kind == "emirates_id":
        number = digits(span)
        return number if luhn_valid(number) else None
    if kind == "phone":
        return _e164(span)
    if kind == "email":
        return span.replace(" ", "").lower()
    return digits(span)


def _column_words(column: str) -> set[str]:
    """The words of a column name, lower case, split on anything but letters and digits."""
    split = re.sub(r"([a-z])([A-Z])", r"\1_\2", unicodedata.normalize("NFKC", column))
    words = [w for w in re.split(r"[^\w]+|_", split.casefold()) if w]
    joined = {"".join(words[i : i + 2]) for i in range(len(words) - 1)}
    return {*words, *joined, "".join(words)}


def name_like_column(column: str) -> bool:
    """Whether a column's name says it holds people's names (``full_name``, ``CustomerName``)."""
    return bool(_column_words(column) & _NAME_COLUMN_WORDS)


def kind_of_column_name(column: str) -> str | None:
    """The identifier kind a column's name announces (``mobile`` -> phone), or None."""
    words = _column_words(column)
    for kind, names in _KIND_COLUMN_WORDS.items():
        if words & names:
            return kind
    return "name" if words & _NAME_COLUMN_WORDS else None
