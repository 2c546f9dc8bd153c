"""PII masking: what is replaced, by which placeholder, and what Japanese text must stay as is.

All numbers and addresses are made up: example.* domains, documentation IP ranges, card-network
test numbers (4111..., 5555...4444, JCB 3530...) and My Numbers computed to pass the check.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from filters.pii import PII_VERSION, PRECEDENCE, PiiResult, luhn_valid, mask_pii, my_number_check_digit

MASKED = [
    # phone
    (
        "お問い合わせは03-1234-5678（平日9時〜17時）まで",
        "お問い合わせは[PHONE]（平日9時〜17時）まで",
        {"phone": 1},
    ),
    (
        "ご予約はフリーダイヤル0120-123-456、携帯電話からはナビダイヤル0570-064-556へおかけください。",
        "ご予約はフリーダイヤル[PHONE]、携帯電話からはナビダイヤル[PHONE]へおかけください。",
        {"phone": 2},
    ),
    (
        "担当者の携帯（090-1234-5678）または080-9876-5432、070-1111-2222までご連絡ください。",
        "担当者の携帯（[PHONE]）または[PHONE]、[PHONE]までご連絡ください。",
        {"phone": 3},
    ),
    (
        "IP電話050-1234-5678、0800-123-4567でも受け付けます。",
        "IP電話[PHONE]、[PHONE]でも受け付けます。",
        {"phone": 2},
    ),
    (
        "海外からは+81-3-1234-5678、携帯は+81 90 1234 5678におかけください。",
        "海外からは[PHONE]、携帯は[PHONE]におかけください。",
        {"phone": 2},
    ),
    ("電話番号は0312345678、携帯は09012345678です。", "電話番号は[PHONE]、携帯は[PHONE]です。", {"phone": 2}),
    ("代表 03(1234)5678／FAX (03)1234-5679", "代表 [PHONE]／FAX [PHONE]", {"phone": 2}),
    ("TEL03-1234-5678 FAX03-1234-5679", "TEL[PHONE] FAX[PHONE]", {"phone": 2}),
    # postal code, only with 〒
    ("〒100-8914 東京都千代田区永田町1-6-1", "[POSTAL] 東京都千代田区永田町1-6-1", {"postal_code": 1}),
    (
        "送付先：〒1000001 東京都千代田区千代田1-1",
        "送付先：[POSTAL] 東京都千代田区千代田1-1",
        {"postal_code": 1},
    ),
    # email
    (
        "資料請求は yamada.taro@example.co.jp へメールでお送りください。",
        "資料請求は [EMAIL] へメールでお送りください。",
        {"email": 1},
    ),
    ("ご質問はsupport+ja@example.comまで。", "ご質問は[EMAIL]まで。", {"email": 1}),
    # My Number (123456789018: see test_my_number_check_digit_hand_computed)
    ("マイナンバーは1234 5678 9018です。", "マイナンバーは[MY_NUMBER]です。", {"my_number": 1}),
    ("個人番号：123456789018（通知カード記載）", "個人番号：[MY_NUMBER]（通知カード記載）", {"my_number": 1}),
    # credit card
    (
        "カード番号4111-1111-1111-1111（有効期限12/28）で決済しました。",
        "カード番号[CARD]（有効期限12/28）で決済しました。",
        {"credit_card": 1},
    ),
    (
        "JCBカード 3530 1113 3330 0000 をご利用いただけます。",
        "JCBカード [CARD] をご利用いただけます。",
        {"credit_card": 1},
    ),
    (
        "アメックス3782-822463-10005、マスター5555555555554444",
        "アメックス[CARD]、マスター[CARD]",
        {"credit_card": 2},
    ),
    # IP
    ("サーバーのIPアドレスは192.168.10.25です。", "サーバーのIPアドレスは[IP]です。", {"ip": 1}),
    ("接続元：2001:db8::8a2e:370:7334（IPv6）", "接続元：[IP]（IPv6）", {"ip": 1}),
    ("アクセス元IP:203.0.113.7と2001:db8::1", "アクセス元IP:[IP]と[IP]", {"ip": 2}),
    ("IPv4射影アドレス::ffff:192.0.2.128も同様。", "IPv4射影アドレス[IP]も同様。", {"ip": 1}),
    # several types in one sentence
    (
        "山田太郎（yamada@example.jp、090-1234-5678、〒150-0002 東京都渋谷区渋谷2-21-1）",
        "山田太郎（[EMAIL]、[PHONE]、[POSTAL] 東京都渋谷区渋谷2-21-1）",
        {"email": 1, "phone": 1, "postal_code": 1},
    ),
]


@pytest.mark.parametrize("text, masked, counts", MASKED, ids=[c[1][:24] for c in MASKED])
def test_masks_with_typed_placeholders(text, masked, counts):
    assert mask_pii(text) == PiiResult(masked, counts)


FULL_WIDTH = [
    ("連絡先：０９０－１２３４－５６７８（山田）", "連絡先：[PHONE]（山田）", {"phone": 1}),
    ("ＴＥＬ　０３－１２３４－５６７８", "ＴＥＬ　[PHONE]", {"phone": 1}),
    ("携帯０９０ー１２３４ー５６７８まで", "携帯[PHONE]まで", {"phone": 1}),  # katakana ー as hyphen
    (
        "〒１００－０００１　東京都千代田区千代田１－１",
        "[POSTAL]　東京都千代田区千代田１－１",
        {"postal_code": 1},
    ),
    ("メール：ｙａｍａｄａ＠ｅｘａｍｐｌｅ．ｊｐ", "メール：[EMAIL]", {"email": 1}),
    ("カード４１１１　１１１１　１１１１　１１１１", "カード[CARD]", {"credit_card": 1}),
]


@pytest.mark.parametrize("text, masked, counts", FULL_WIDTH, ids=[c[0][:12] for c in FULL_WIDTH])
def test_full_width_matches_and_original_span_is_replaced(text, masked, counts):
    assert mask_pii(text) == PiiResult(masked, counts)


UNCHANGED = [
    ("2024-10-04に説明会を開催します。", "date"),
    ("2024年10月4日（金）", "Japanese date"),
    ("時刻は2024-10-04T12:30:45+09:00です。", "ISO timestamp"),
    ("受付は12:30から13:45まで。", "times"),
    ("価格は1,234,567円（税込）です。", "price"),
    ("注文番号2024-0001をご確認ください。", "order number"),
    ("平成五年法律第八十八号", "law number in kanji"),
    ("個人情報の保護に関する法律（平成十五年法律第五十七号）第二条第一項", "law citation"),
    ("整理番号123456789012", "12 digits, wrong check digit (8 expected)"),
    ("整理番号1234-5678-9012", "4-4-4, wrong check digit"),
    ("伝票番号4111111111111112", "16 digits, not Luhn"),
    ("会員番号 1234 5678 9018 3457", "16 digits, not Luhn, first 12 a valid My Number"),
    ("1234567890181は13桁", "13-digit run holding a valid My Number, not Luhn"),
    ("00004111111111111111", "20-digit run holding a Luhn-valid card number"),
    ("電話番号 03-1234-567（桁が足りない）", "9-digit phone"),
    ("090-1234-56789", "12-digit mobile"),
    ("090-123-4567", "10-digit mobile"),
    ("03-1234-56789", "11-digit landline"),
    ("国際電話は001-234-5678のように00で始まる", "00 international access prefix"),
    ("口座99-123456789018", "valid My Number as the tail of a hyphenated number"),
    ("参照12-4111111111111111", "Luhn-valid card as the tail of a hyphenated number"),
    ("0312345678901", "13-digit run starting with 0"),
    ("03-1234-5678-9", "phone-like head of a longer hyphenated number"),
    ("内線1-03-1234-5678", "phone-like tail of a longer hyphenated number"),
    ("郵便番号100-0001（〒なし）", "postal code without 〒"),
    ("ISBN978-4-00-310101-8", "ISBN"),
    ("v1.2.3.4 をリリースしました。", "version string after a letter"),
    ("Ver.1.2.3.4", "version string after Ver."),
    ("第1.2.3.4.5項", "five dotted numbers"),
    ("256.1.1.1", "octet over 255"),
    ("MACアドレス00:1A:2B:3C:4D:5E", "MAC address is not IPv6"),
    ("std::vector と a :: b", "double colons without an address"),
    ("user@localhost には送らない", "email without a TLD"),
    ("[EMAIL]と[PHONE]", "already-masked placeholders"),
]


@pytest.mark.parametrize("text, why", UNCHANGED, ids=[c[1] for c in UNCHANGED])
def test_not_personal_information_stays_unchanged(text, why):
    assert mask_pii(text) == PiiResult(text, {}), why


def test_ipv4_shaped_version_string_is_masked_on_purpose():
    # A dotted quad of octets 0-255 cannot be told from an address; unless a letter or "Ver."
    # sits right before it we mask it. Over-masking a version number costs little.
    assert mask_pii("バージョン1.2.3.4に更新") == PiiResult("バージョン[IP]に更新", {"ip": 1})


# --- precedence ---------------------------------------------------------------------------


def test_precedence_order():
    assert PRECEDENCE == ("email", "ip", "credit_card", "my_number", "phone", "postal_code")


def test_email_wins_over_phone_inside_it():
    # The local part is a mobile number; the phone matcher finds it too, email must win.
    assert mask_pii("連絡は09012345678@docomo.ne.jpへ") == PiiResult("連絡は[EMAIL]へ", {"email": 1})


def test_card_wins_over_my_number_inside_it():
    # 4-4-4-4 with hyphens whose first 12 digits pass the My Number check.
    first12 = "123456789018"
    for tail in range(10000):
        card = first12 + f"{tail:04d}"
        if luhn_valid(card):
            break
    grouped = "-".join(card[i : i + 4] for i in range(0, 16, 4))
    assert mask_pii(f"番号{grouped}") == PiiResult("番号[CARD]", {"credit_card": 1})


# --- check digits ---------------------------------------------------------------------------


def reference_check_digit(first11: str) -> int:
    """Independent implementation: weights written out left to right for P_11 ... P_1."""
    weights = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    remainder = sum(int(d) * w for d, w in zip(first11, weights)) % 11
    return 0 if remainder in (0, 1) else 11 - remainder


@pytest.mark.parametrize(
    "number",
    [
        "123456789018",  # 1*6+2*5+3*4+4*3+5*2+6*7+7*6+8*5+9*4+0*3+1*2 = 212; 212 % 11 = 3; 11-3 = 8
        "314159265352",  # sum 196; 196 % 11 = 9; 11-9 = 2
        "271828182840",  # sum 221; 221 % 11 = 1 -> 0
        "141421356230",  # sum 132; 132 % 11 = 0 -> 0
    ],
)
def test_my_number_check_digit_hand_computed(number):
    assert my_number_check_digit(number[:11]) == int(number[11])
    assert mask_pii(number).counts == {"my_number": 1}
    wrong = number[:11] + str((int(number[11]) + 1) % 10)
    assert mask_pii(wrong).counts == {}


def test_my_number_check_digit_matches_reference():
    rng = random.Random(20241004)
    seen = set()
    for _ in range(5000):
        first11 = "".join(rng.choice("0123456789") for _ in range(11))
        check = reference_check_digit(first11)
        seen.add(check)
        assert my_number_check_digit(first11) == check, first11
    assert seen == set(range(10))


@pytest.mark.parametrize(
    "number, valid",
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("3530111333300000", True),
        ("378282246310005", True),
        ("30569309025904", True),
        ("4111111111111112", False),
        ("79927398710", False),
        ("79927398713", True),  # the textbook Luhn example
    ],
)
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


# --- edge cases ---------------------------------------------------------------------------


def test_empty_text():
    assert mask_pii("") == PiiResult("", {})


@pytest.mark.parametrize(
    "text, masked",
    [
        ("📞03-1234-5678👍", "📞[PHONE]👍"),
        ("👨\u200d👩\u200d👧yamada@example.jp🎉", "👨\u200d👩\u200d👧[EMAIL]🎉"),
        ("𠮷田さん〒100-0001𩸽", "𠮷田さん[POSTAL]𩸽"),
        ("🇯🇵192.0.2.1🇯🇵", "🇯🇵[IP]🇯🇵"),
    ],
    ids=["emoji", "zwj-sequence", "supplementary-kanji", "flags"],
)
def test_astral_characters_next_to_matches_are_kept(text, masked):
    result = mask_pii(text)
    assert result.text == masked
    assert result.text.encode("utf-8").decode("utf-8") == masked  # no split surrogate pairs


PARAGRAPH = (
    "株式会社サンプルのお問い合わせ窓口は03-1234-5678（平日9時〜17時）、"
    "メールはinfo@example.co.jpです。〒100-0001 東京都千代田区千代田1-1。"
    "2024年10月4日更新、価格は1,234,567円。\n"
)


def test_one_megabyte_of_text_runs():
    repeats = 1_000_000 // len(PARAGRAPH.encode("utf-8")) + 1
    result = mask_pii(PARAGRAPH * repeats)
    assert result.counts == {"phone": repeats, "email": repeats, "postal_code": repeats}
    assert result.text.count("2024年10月4日") == repeats


@pytest.mark.parametrize(
    "text",
    [
        "1" * 1_000_000,
        "0" * 1_000_000,
        "1-" * 500_000,
        "1." * 500_000,
        "a" * 1_000_000,
        "a@" * 500_000,
        "x@" + "a." * 500_000,
        ":a" * 500_000,
        "0 " * 500_000,
        "+81" * 333_333,
        "(0" * 500_000,
        "::" * 500_000,
    ],
    ids=[
        "digits",
        "zeros",
        "hyphens",
        "dots",
        "letters",
        "ats",
        "long-domain",
        "colons",
        "spaced-zeros",
        "plus81",
        "parens",
        "double-colons",
    ],
)
def test_one_megabyte_adversarial_runs_finish(text):
    assert mask_pii(text) == PiiResult(text, {})


def test_masking_is_idempotent():
    once = mask_pii(PARAGRAPH + MASKED[-1][0]).text
    assert mask_pii(once) == PiiResult(once, {})


def test_result_is_frozen_and_versioned():
    with pytest.raises(dataclasses.FrozenInstanceError):
        mask_pii("").text = "x"
    assert PII_VERSION == "pii_v1"


# --- the fast paths against the former scanning -------------------------------------------------


def _former_candidates(folded):
    """filters.pii._candidates as it was before the necessary-substring checks and the phone
    pattern that opens with its first character (commit 3584fea): every pattern on every text."""
    import ipaddress
    import re

    from filters import pii

    d = "[0-9]"
    phone = re.compile(
        rf"(?<![0-9_+])(?<!{d}[-.])(?:"
        rf"0{d}{{1,4}}(?P<s>{pii._SEP}?){d}{{1,4}}(?P=s){d}{{3,4}}"
        rf"|0{d}{{1,4}}\({d}{{1,4}}\){d}{{3,4}}"
        rf"|\(0{d}{{1,4}}\)[ ]?{d}{{1,4}}-?{d}{{3,4}}"
        rf"|\+81[- ]?(?:\(0\)[- ]?)?[1-9]{d}{{0,3}}(?P<u>{pii._SEP}?){d}{{1,4}}(?P=u){d}{{3,4}}"
        rf"){pii._END}"
    )
    for m in pii._EMAIL_RE.finditer(folded):
        if pii._TLD_RE.fullmatch(m.group().rsplit(".", 1)[1]):
            yield "email", m.start(), m.end()
    for m in pii._IPV4_RE.finditer(folded):
        if all(int(octet) <= 255 for octet in m.group().split(".")):
            yield "ip", m.start(), m.end()
    for m in pii._IPV6_RE.finditer(folded):
        s = m.group()
        if s.count(":") >= 2 and any(c not in ":." for c in s):
            try:
                ipaddress.IPv6Address(s)
            except ValueError:
                continue
            yield "ip", m.start(), m.end()
    for m in pii._CARD_RE.finditer(folded):
        digits = pii._digits(m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield "credit_card", m.start(), m.end()
    for m in pii._MY_NUMBER_RE.finditer(folded):
        digits = pii._digits(m.group())
        if my_number_check_digit(digits[:11]) == int(digits[11]):
            yield "my_number", m.start(), m.end()
    for m in phone.finditer(folded):
        s = m.group()
        digits = pii._digits(s)
        national = "0" + digits[2:] if s.startswith("+") else digits
        if pii._valid_phone(national):
            yield "phone", m.start(), m.end()
    for m in pii._POSTAL_RE.finditer(folded):
        yield "postal_code", m.start(), m.end()


def test_fast_paths_mask_exactly_what_every_pattern_on_every_text_masks(shared_data, monkeypatch):
    import json
    import pathlib
    import re

    from filters import pii

    dev = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text("utf-8").splitlines()]
    speeches = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    texts += [json.loads(line)["speech"] for line in speeches.read_text("utf-8").splitlines()]
    rng = random.Random(20261129)
    pool = list("0123456789012345678901234567890123456789 -.:@〒()+abcdefABCDEF８１０－ー\u3000x")
    pool += ["+81", "::", "090", "03", "example.com", "ｱ", "１２３４"]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(20_000)]
    fast = [mask_pii(text) for text in texts]
    monkeypatch.setattr(pii, "_candidates", _former_candidates)
    monkeypatch.setattr(pii, "_FOLDED_RE", re.compile(".", re.S))  # always fold
    slow = [mask_pii(text) for text in texts]
    assert sum(bool(r.counts) for r in slow) > 1_000
    for text, a, b in zip(texts, fast, slow):
        assert a == b, text[:60]
