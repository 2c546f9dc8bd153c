"""Exact-dedup keys: which spellings collide and which must not."""

from __future__ import annotations

import hashlib

import pytest

from filters.dedup import exact_dedup_key
from filters.html import decode_html
from filters.normalize import normalize_japanese

# Diet speech 119805271X00120190227_413 (kokkai_speeches/speeches_sample2000.jsonl) as served.
DIET = (
    "○佐々木（紀）分科員\u3000ありがとうございます。\r\n\u3000さまざま考えていらっしゃるようで"
    "ございますので、ぜひ、広報、導入促進手法について、どんどんやっていただきたいなというふうに思います。"
)

SAME = [
    (DIET, DIET.replace("\r\n", "\n"), "CRLF vs LF"),
    (DIET, DIET.replace("\u3000", " "), "ideographic vs ASCII space"),
    (DIET, DIET.replace("（", "(").replace("）", ")"), "full-width vs ASCII parentheses"),
    (DIET, DIET + "  \n\n\n", "trailing blanks and blank lines"),
    ("ＡＩ研究　ｶﾞｯｺｳ", "AI研究 ガッコウ", "full-width ASCII and half-width katakana"),
    ("か\u3099っこう", "がっこう", "decomposed vs precomposed dakuten"),
]
DIFFERENT = [
    ("がっこうへ行く", "かっこうへ行く", "dakuten: school vs cuckoo"),
    ("パン", "バン", "handakuten vs dakuten"),
    ("ハンカク", "ハンガク", "one voiced mark deep inside a word"),
    ("1467〜1487年", "1467~1487年", "wave dash U+301C is not the ASCII tilde"),
]


@pytest.mark.parametrize("a, b, why", SAME, ids=[c[2] for c in SAME])
def test_variants_of_one_text_collide(a, b, why):
    assert exact_dedup_key(a) == exact_dedup_key(b), why


@pytest.mark.parametrize("a, b, why", DIFFERENT, ids=[c[2] for c in DIFFERENT])
def test_different_words_do_not_collide(a, b, why):
    assert exact_dedup_key(a) != exact_dedup_key(b), why


def test_key_is_sha256_of_normalised_utf8():
    key = exact_dedup_key(DIET)
    assert key == hashlib.sha256(normalize_japanese(DIET).encode("utf-8")).hexdigest()
    assert len(key) == 64 and int(key, 16) >= 0


def test_one_text_in_three_legacy_encodings_gets_one_key(fixtures_dir):
    # chardet ships the same universalchardet ReadMe in Shift_JIS, EUC-JP and ISO-2022-JP.
    names = ["shift_jis_ude_2.txt", "euc_jp_ude_1.txt", "iso2022jp_ude_1.txt"]
    decoded = [decode_html((fixtures_dir / name).read_bytes(), None) for name in names]
    assert [d.charset for d in decoded] == ["cp932", "euc_jis_2004", "iso2022_jp_ext"]
    assert len({exact_dedup_key(d.text) for d in decoded}) == 1
