"""Mask personal information in Japanese text with typed placeholders (``PII_VERSION``).

Web and government text carries contact details and identifiers that a pre-training corpus
should not memorise. ``mask_pii`` replaces each match with a placeholder naming its type, so the
sentence stays readable ("お問い合わせは[PHONE]まで") and a model still learns where such
things occur, and counts the matches per type so a run can report how much was masked.

Types, placeholders and what counts as a match:

- ``email`` -> ``[EMAIL]``: ``local@domain.tld``, ASCII only, TLD of two or more letters.
- ``ip`` -> ``[IP]``: IPv4 dotted quads with every octet 0-255; IPv6 candidates (hex and
  colons, optionally an embedded IPv4 tail) that ``ipaddress.IPv6Address`` accepts.
- ``credit_card`` -> ``[CARD]``: 13-19 digits, unbroken or in groups of four (or Amex/Diners
  4-6-5 / 4-6-4) split by spaces or hyphens, passing the Luhn check.
- ``my_number`` -> ``[MY_NUMBER]``: 12 digits, unbroken or 4-4-4, whose last digit is the
  check digit of the official algorithm (``my_number_check_digit``).
- ``phone`` -> ``[PHONE]``: Japanese numbers: landlines (03-1234-5678), 0120/0800 toll-free,
  0570 navi-dial, 050/070/080/090 (11 digits), also ``03(1234)5678``, ``(03)1234-5678`` and
  ``+81-3-1234-5678`` / ``+81 90 1234 5678``. Groups are split by hyphens, dashes, ー, spaces
  or nothing; what decides is the digit count: 11 for 020/050/060/070/080/090(0800), else 10.
- ``postal_code`` -> ``[POSTAL]``: only after 〒 (〒100-0001, 〒1000001); the 〒 is masked too.
  Bare 123-4567 is far too often something else to mask.

Matching runs on a width-folded copy of the text (full-width ASCII and digits to ASCII, the
dash family to "-", U+3000 to a space; always one character for one, so offsets agree) and the
original span is replaced: ``０９０－１２３４－５６７８`` becomes ``[PHONE]``.

Digit runs are bounded: a match may not start or end inside a longer run of digits, nor next to
a hyphen or dot that continues the number (``1-2024-10-04``), so a 20-digit number, an order
number 2024-0001, a date 2024-10-04 or the middle of a long ID is left alone. Cards and My
Numbers must also not touch ASCII letters (``SKU123456789012`` is an ID); phones may
(``TEL03-1234-5678``).

When spans overlap, the earlier type in ``PRECEDENCE`` wins (email, ip, credit_card, my_number,
phone, postal_code); within a type the earlier, then longer, span wins.

Known over-masking, accepted: a dotted quad such as the version string 1.2.3.4 is a valid
IPv4 address and is masked unless a letter (or "Ver.") sits right before it (v1.2.3.4 stays);
about one in ten random 16-digit numbers pass Luhn and one in eleven 12-digit numbers pass the
My Number check, so those are masked when they appear as a bounded run.

Every regex is built from bounded quantifiers over disjoint classes and anchored by
look-behinds that stop a match from starting inside a run, so scanning is linear in the text.
Changing what is masked must change ``PII_VERSION``.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from dataclasses import dataclass

PII_VERSION = "pii_v1"

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "ip": "[IP]",
    "credit_card": "[CARD]",
    "my_number": "[MY_NUMBER]",
    "phone": "[PHONE]",
    "postal_code": "[POSTAL]",
}
PRECEDENCE = tuple(PLACEHOLDERS)  # email, ip, credit_card, my_number, phone, postal_code


@dataclass(frozen=True)
class PiiResult:
    text: str  # masked
    counts: dict[str, int]  # matches per type; only types found


# One character for one, so spans found in the folded text are spans of the original.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # full-width ASCII -> ASCII
_FOLD[0x3000] = ord(" ")
for _dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff70":
    _FOLD[ord(_dash)] = ord("-")

_D = "[0-9]"  # never \d: it also matches Arabic-Indic and other Unicode digits
# No start inside a digit run or right after "digit-" / "digit." (the tail of a longer number).
_START = rf"(?<!{_D})(?<!{_D}[-.])"
_END = rf"(?!{_D})(?![-.]{_D})"
_NO_WORD_BEFORE = r"(?<![A-Za-z_])"
_NO_WORD_AFTER = r"(?![A-Za-z_])"

_EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TLD_RE = re.compile(r"[A-Za-z]{2,63}")

_IPV4_RE = re.compile(
    rf"(?<![0-9A-Za-z_])(?<!{_D}\.)(?<![A-Za-z]\.){_D}{{1,3}}(?:\.{_D}{{1,3}}){{3}}"
    rf"(?![0-9A-Za-z_])(?!\.{_D})"
)
_IPV6_RE = re.compile(
    r"(?<![0-9A-Za-z_.])(?<![0-9A-Fa-f]:)(?:[0-9A-Fa-f]|::)[0-9A-Fa-f:]{0,38}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z_:])(?!\.[0-9])"
)

_CARD_RE = re.compile(
    _START
    + _NO_WORD_BEFORE
    + rf"(?:{_D}{{13,19}}"
    + rf"|{_D}{{4}}(?P<s>[- ]){_D}{{4}}(?:(?P=s){_D}{{4}}){{1,3}}(?:(?P=s){_D}{{1,3}})?"
    + rf"|{_D}{{4}}(?P<t>[- ]){_D}{{6}}(?P=t){_D}{{4,5}})"
    + _END
    + _NO_WORD_AFTER
)
# Also not glued by a space to another digit group: 1234 5678 9018 3457 is not a My Number.
_MY_NUMBER_RE = re.compile(
    _START
    + r"(?<![0-9] )"
    + _NO_WORD_BEFORE
    + rf"(?:{_D}{{12}}|{_D}{{4}}(?P<s>[- ]){_D}{{4}}(?P=s){_D}{{4}})"
    + _END
    + r"(?! [0-9])"
    + _NO_WORD_AFTER
)

_SEP = "[-ー ]"


def _phone_start(char: str) -> str:
    """``char`` (a regex for one character), not preceded by a digit, "_", "+" or "digit-"/"digit.".

    Each phone alternative opens with its first character and checks what precedes the number
    after it (look-behinds that include that character): the same matches as look-behinds placed
    before the group, but a pattern opening with literals lets the regex engine skip to the next
    "0", "(" or "+" instead of trying every position (that scan was a third of mask_pii's time).
    """
    return rf"{char}(?<![0-9_+]{char})(?<![0-9][-.]{char})"


_PHONE_RE = re.compile(
    "(?:"
    # domestic: 03-1234-5678, 0312345678, 03 1234 5678, 03ー1234ー5678
    rf"{_phone_start('0')}{_D}{{1,4}}(?P<s>{_SEP}?){_D}{{1,4}}(?P=s){_D}{{3,4}}"
    # 03(1234)5678 and (03)1234-5678
    rf"|{_phone_start('0')}{_D}{{1,4}}\({_D}{{1,4}}\){_D}{{3,4}}"
    rf"|{_phone_start(re.escape('('))}0{_D}{{1,4}}\)[ ]?{_D}{{1,4}}-?{_D}{{3,4}}"
    # +81-3-1234-5678, +81 90 1234 5678, +81(0)3-1234-5678, +81312345678
    rf"|{_phone_start(re.escape('+'))}81[- ]?(?:\(0\)[- ]?)?[1-9]{_D}{{0,3}}"
    rf"(?P<u>{_SEP}?){_D}{{1,4}}(?P=u){_D}{{3,4}}"
    rf"){_END}"
)
_ELEVEN_DIGIT_PREFIXES = ("020", "050", "060", "070", "080", "090")  # 0800 starts with 080

_POSTAL_RE = re.compile(rf"〒[ ]?{_D}{{3}}[-ー]?{_D}{{4}}{_END}")

_NON_DIGIT_RE = re.compile("[^0-9]")

# Necessary conditions, each a substring every match of the patterns after it contains; a text
# without it is not scanned by them. The patterns above open with look-behinds, so the regex
# engine tries them at every position; these open with a digit, a ":" or a "@", which it skips
# to directly (a third of the clean stage's PII time was scanning pages with no candidate).
_EIGHT_DIGITS_RE = re.compile(r"[0-9]{4}[- ]?[0-9]{4}")  # every card and My Number match
_DOTTED_QUAD_RE = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")  # every IPv4 match
# An IPv6 address with two colons or more has two with at most 4 hex digits between them.
_TWO_COLONS_RE = re.compile(r":[0-9A-Fa-f]{0,4}:")
# Characters _FOLD changes; a text without any needs no folding.
_FOLDED_RE = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_FOLD)) + "]")


def _digits(s: str) -> str:
    return _NON_DIGIT_RE.sub("", s)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check used by payment card numbers.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def my_number_check_digit(first11: str) -> int:
    """Check digit of an individual number (マイナンバー) from its first 11 digits.

    Per the ordinance (行政手続における特定の個人を識別するための番号の利用等に関する法律施行令
    第8条): check = 11 - (sum P_n * Q_n mod 11), where P_n is the n-th digit counted from the
    right of the 11, Q_n = n + 1 for n <= 6 and n - 5 for n >= 7; a remainder of 0 or 1 gives 0.

    >>> my_number_check_digit("12345678901")
    8
    """
    total = sum(int(p) * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(reversed(first11), start=1))
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def _valid_phone(national: str) -> bool:
    """``national`` is the digit string with its leading 0 (+81 numbers get one prepended)."""
    if national[1] == "0":  # 00x is an international-call prefix, not a number
        return False
    expected = 11 if national.startswith(_ELEVEN_DIGIT_PREFIXES) else 10
    return len(national) == expected


def _candidates(folded: str):
    """Yield (type, start, end) for every validated match, any order, overlaps allowed."""
    if "@" in folded:
        for m in _EMAIL_RE.finditer(folded):
            if _TLD_RE.fullmatch(m.group().rsplit(".", 1)[1]):
                yield "email", m.start(), m.end()
    if _DOTTED_QUAD_RE.search(folded):
        for m in _IPV4_RE.finditer(folded):
            if all(int(octet) <= 255 for octet in m.group().split(".")):
                yield "ip", m.start(), m.end()
    if _TWO_COLONS_RE.search(folded):
        for m in _IPV6_RE.finditer(folded):
            s = m.group()
            if s.count(":") >= 2 and any(c not in ":." for c in s):
                try:
                    ipaddress.IPv6Address(s)
                except ValueError:
                    continue
                yield "ip", m.start(), m.end()
    if _EIGHT_DIGITS_RE.search(folded):
        for m in _CARD_RE.finditer(folded):
            digits = _digits(m.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                yield "credit_card", m.start(), m.end()
        for m in _MY_NUMBER_RE.finditer(folded):
            digits = _digits(m.group())
            if my_number_check_digit(digits[:11]) == int(digits[11]):
                yield "my_number", m.start(), m.end()
    for m in _PHONE_RE.finditer(folded):
        s = m.group()
        digits = _digits(s)
        national = "0" + digits[2:] if s.startswith("+") else digits
        if _valid_phone(national):
            yield "phone", m.start(), m.end()
    if "〒" in folded:
        for m in _POSTAL_RE.finditer(folded):
            yield "postal_code", m.start(), m.end()


def mask_pii(text: str) -> PiiResult:
    """Replace personal information with typed placeholders and count matches per type.

    >>> r = mask_pii("お問い合わせは03-1234-5678（平日9時〜17時）まで")
    >>> r.text, r.counts
    ('お問い合わせは[PHONE]（平日9時〜17時）まで', {'phone': 1})
    >>> mask_pii("〒100-8914 東京都千代田区永田町1-6-1 info@example.go.jp").text
    '[POSTAL] 東京都千代田区永田町1-6-1 [EMAIL]'
    >>> mask_pii("2024-10-04 12:30 受付番号2024-0001").counts
    {}
    """
    folded = text.translate(_FOLD) if _FOLDED_RE.search(text) else text
    rank = {t: i for i, t in enumerate(PRECEDENCE)}
    ordered = sorted(_candidates(folded), key=lambda c: (rank[c[0]], c[1], c[1] - c[2]))
    # Accepted spans never overlap, so sorted by start they are sorted by end too: a new span
    # only has to be checked against its neighbours (keeps many matches from going quadratic).
    starts: list[int] = []
    taken: list[tuple[str, int, int]] = []
    for kind, start, end in ordered:
        i = bisect.bisect_right(starts, start)
        if (i > 0 and taken[i - 1][2] > start) or (i < len(taken) and taken[i][1] < end):
            continue
        starts.insert(i, start)
        taken.insert(i, (kind, start, end))
    out: list[str] = []
    counts: dict[str, int] = {}
    pos = 0
    for kind, start, end in taken:
        out.append(text[pos:start])
        out.append(PLACEHOLDERS[kind])
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    out.append(text[pos:])
    return PiiResult("".join(out), counts)
