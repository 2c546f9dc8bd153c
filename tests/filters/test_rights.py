"""Rights notices on real Japanese pages and on hand-made CC / government-terms snippets."""

from __future__ import annotations

import gzip
import pathlib
import time

import pytest

from filters.rights import SPDX_CC_IDS, detect_rights_notices

# What each html_pages_postlight page carries, checked by eye against the page source (after
# html.unescape: the fixtures spell most non-ASCII characters as &#x...; entities).
# N = no_reproduction_ja, A = all_rights_reserved, C = copyright_line, CC = cc_license.
POSTLIGHT = {
    "bookwalker.jp.html": ("C",),
    "buzzap.jp.html": ("C",),  # "Copyright(c) 2019 BUZZAP！ All Rights Resered." (sic): no A
    "getnews.jp.html": ("C",),
    "japan.cnet.com.html": ("A", "C"),
    "japan.zdnet.com.html": ("A", "C"),
    "jvndb.jvn.jp.html": ("A", "C"),  # only in the alt text of the footer image
    "news.mynavi.jp.html": ("C",),
    "phpspot.org.html": ("C",),
    "scan.netsecurity.ne.jp.html": ("N", "C"),
    "sect.iij.ad.jp.html": ("C",),
    "takagi-hiromitsu.jp.html": ("A", "C"),  # an embedded NOTICE SUPPORT CENTER notice, not the diary's
    "techlog.iij.ad.jp.html": ("C",),
    "weekly.ascii.jp.html": ("C",),
    "wired.jp.html": ("C",),
    "www.asahi.com.html": ("N", "A", "C"),
    "www.elecom.co.jp.html": ("A", "C"),
    "www.gizmodo.jp.html": ("A", "C"),
    "www.infoq.com.html": ("C",),
    "www.ipa.go.jp.html": ("C",),
    "www.itmedia.co.jp.html": ("A", "C"),
    "www.jnsa.org.html": ("A", "C"),
    "www.lifehacker.jp.html": ("A", "C"),
    "www.moongift.jp.html": ("A", "C"),
    "www.oreilly.co.jp.html": ("C",),
    "www.ossnews.jp.html": ("N", "A", "C", "CC"),  # CC BY-NC 4.0 badge *and* 無断転載を禁じます
    "www.publickey1.jp.html": (),
    "www.rbbtoday.com.html": ("N", "C"),
    "www.sanwa.co.jp.html": (),
    "www.yomiuri.co.jp.html": ("N", "C"),
}
KIND = {"N": "no_reproduction_ja", "A": "all_rights_reserved", "C": "copyright_line", "CC": "cc_license"}


@pytest.fixture(scope="module")
def postlight(shared_data) -> dict[str, list[dict]]:
    folder = shared_data / "html_pages_postlight" / "fixtures"
    return {
        p.name: detect_rights_notices(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.html"))
    }


def test_every_postlight_page_is_in_the_table(postlight):
    assert sorted(postlight) == sorted(POSTLIGHT)


@pytest.mark.parametrize("page, kinds", POSTLIGHT.items(), ids=list(POSTLIGHT))
def test_postlight_page_notices(postlight, page, kinds):
    assert [n["kind"] for n in postlight[page]] == [KIND[k] for k in kinds]


@pytest.mark.parametrize(
    "page, kind, match",
    [
        ("www.yomiuri.co.jp.html", "no_reproduction_ja", "無断転載禁止"),
        ("www.yomiuri.co.jp.html", "copyright_line", "Copyright (C) The Yomiuri Shimbun."),
        ("www.asahi.com.html", "no_reproduction_ja", "無断転載を禁じます"),
        ("www.rbbtoday.com.html", "copyright_line", "Copyright © 2022 IID, Inc."),
        ("getnews.jp.html", "copyright_line", "(c)2008-2022,東京産業新聞社"),
        ("jvndb.jvn.jp.html", "copyright_line", "Copyright © 2007- IPA. All rights reserved."),
        # "Copyright ©" <script>year();</script> "2022 ...": the script is dropped, the line joined.
        ("www.ipa.go.jp.html", "copyright_line", "Copyright © 2022 Information-technology Promotion"),
        ("www.elecom.co.jp.html", "all_rights_reserved", "ALL RIGHTS RESERVED."),
        ("www.ossnews.jp.html", "cc_license", "creativecommons.org/licenses/by-nc/4.0"),
    ],
)
def test_postlight_matched_text(postlight, page, kind, match):
    found = [n for n in postlight[page] if n["kind"] == kind]
    assert len(found) == 1
    assert found[0]["match"].startswith(match)
    assert len(found[0]["match"]) <= 60


def test_ossnews_licence_is_spdx(postlight):
    assert [n["spdx"] for n in postlight["www.ossnews.jp.html"] if n["kind"] == "cc_license"] == [
        "CC-BY-NC-4.0"
    ]


# --- 無断転載 and friends --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, match",
    [
        ("記事・写真の無断転載を禁じます。", "無断転載を禁じます"),
        ("無断転載禁止", "無断転載禁止"),
        ("当サイトの画像の無断転載・複製を禁じます", "無断転載・複製を禁じます"),
        ("本誌掲載記事の無断複製・転載を禁止します。", "無断複製・転載を禁止します"),
        ("無断転載、複製、配布を固く禁じます", "無断転載、複製、配布を固く禁じます"),
        ("禁無断転載", "禁無断転載"),
        ("無断転載を禁ず", "無断転載を禁ず"),
        ("掲載記事の無断転載を禁じる", "無断転載を禁じる"),
        ("無断 転載 禁止", "無断 転載 禁止"),  # half-width spaces
        ("無断\u3000転載\u3000禁止", "無断 転載 禁止"),  # full-width spaces, shown collapsed
        ("無断での転載はご遠慮ください", "無断での転載はご遠慮ください"),
        ("写真の無断転用禁止", "無断転用禁止"),
        ("許可なく転載することを禁止します", "許可なく転載することを禁止します"),
        ("<span>無断</span><b>転載</b>を禁じます", "無断 転載 を禁じます"),  # split by tags
        ("&#x7121;&#x65AD;&#x8EE2;&#x8F09;&#x3092;&#x7981;&#x3058;&#x307E;&#x3059;", "無断転載を禁じます"),
    ],
)
def test_no_reproduction_variants(text, match):
    found = [n for n in detect_rights_notices(text) if n["kind"] == "no_reproduction_ja"]
    assert [n["match"] for n in found] == [match]


@pytest.mark.parametrize(
    "text",
    [
        # takagi-hiromitsu.jp's diary discusses unauthorised use; no notice there.
        "NTTの回線を無断使用された事件があったが、どの犯罪類型にも該当しないとして立件されなかった。",
        "無断で使用していた（使用料約16万円）ことが発覚した。",
        "転載です。続きはTechRepublic Japanでお読みいただけます。",  # japan.zdnet.com
        "<a href='/itsearch/copyright'>著作権と転載について</a>",  # news.mynavi.jp
    ],
)
def test_prose_about_reproduction_is_not_a_notice(text):
    assert [n["kind"] for n in detect_rights_notices(text)] == []


# --- copyright lines ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, kinds",
    [
        ("© BOOK WALKER Co.,Ltd.", ["copyright_line"]),
        ("&copy; 2024 株式会社サンプル", ["copyright_line"]),
        (
            "Copyright (c) 2019 ASAHI INTERACTIVE, Inc. All rights reserved.",
            ["all_rights_reserved", "copyright_line"],
        ),
        ("(C) 1999 読売新聞社", ["copyright_line"]),
        ("COPYRIGHT 2001 - 2008 ELECOM", ["copyright_line"]),
        ("機密性への影響（C）: 高  完全性への影響（I）: 部分的", []),  # jvndb's CVSS table
        ("著作権法（Copyright Act）の改正について", []),
        ("<script>/*! jQuery v1.11.3 | (c) 2005, 2015 jQuery Foundation */</script><p>本文</p>", []),
        ("<!-- (c) 2010 template vendor --><p>本文</p>", []),
    ],
)
def test_copyright_lines(text, kinds):
    assert [n["kind"] for n in detect_rights_notices(text)] == kinds


def test_each_kind_is_reported_once():
    text = "無断転載を禁じます。" * 3 + "© 2020 A. © 2021 B. All rights reserved. All Rights Reserved."
    notices = detect_rights_notices(text)
    assert [n["kind"] for n in notices] == ["no_reproduction_ja", "all_rights_reserved", "copyright_line"]
    assert notices[2]["match"].startswith("© 2020 A.")


# --- Creative Commons -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "html, spdx",
    [
        ('<a rel="license" href="https://creativecommons.org/licenses/by/4.0/deed.ja">CC BY 4.0</a>', ["CC-BY-4.0"]),
        ('<a href="http://creativecommons.org/licenses/by-sa/2.1/jp/">表示-継承 2.1 日本</a>', ["CC-BY-SA-2.1-JP"]),
        # SPDX lists no CC BY 2.1 JP (only BY-SA 2.1 JP), although old Japanese sites use it.
        ('<a href="https://creativecommons.org/licenses/by/2.1/jp/">表示 2.1 日本</a>', ["LicenseRef-CC-BY-2.1-JP"]),
        ('<a href="https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode.ja">CC BY-NC-ND</a>', ["CC-BY-NC-ND-4.0"]),
        ('<a href="https://creativecommons.org/licenses/by-nd-nc/1.0/">BY-ND-NC 1.0</a>', ["CC-BY-NC-ND-1.0"]),
        ('<a href="https://creativecommons.org/publicdomain/zero/1.0/deed.ja">CC0</a>', ["CC0-1.0"]),
        ('<a href="https://creativecommons.org/publicdomain/mark/1.0/">PDM</a>', ["CC-PDM-1.0"]),
        (('写真: <a href="https://creativecommons.org/licenses/by/2.0/">CC BY 2.0</a>、本文: '
          '<a href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA 4.0</a>、'
          '<a href="https://creativecommons.org/licenses/by/2.0/">CC BY 2.0</a>'), ["CC-BY-2.0", "CC-BY-SA-4.0"]),
        # A badge image alone is not a licence link (ossnews.jp links both).
        ('<img src="https://i.creativecommons.org/l/by-nc/4.0/88x31.png">', []),
        ("クリエイティブ・コモンズ・ライセンスの下に提供されています", []),
    ],
    ids=["by-4.0-deed", "by-sa-2.1-jp", "by-2.1-jp", "by-nc-nd-legalcode", "cc1-order", "cc0", "pdm", "distinct",
         "badge-only", "no-link"],
)  # fmt: skip
def test_cc_licences(html, spdx):
    assert [n["spdx"] for n in detect_rights_notices(html) if n["kind"] == "cc_license"] == spdx


def test_spdx_ids_are_on_the_spdx_list():
    spdx = pytest.importorskip("packaging.licenses._spdx")  # packaging's copy of the SPDX licence list

    listed = {entry["id"] for entry in spdx.LICENSES.values()}
    assert SPDX_CC_IDS <= listed
    assert {i for i in listed if i.startswith(("CC-BY", "CC0", "CC-PDM"))} <= SPDX_CC_IDS


def test_wikipedia_record_from_common_crawl_is_cc_by_sa():
    from warcio.archiveiterator import ArchiveIterator

    path = pathlib.Path(__file__).resolve().parents[1] / "data" / "sources" / "cc_whirlwind.warc.gz"
    with gzip.open(path) as stream:
        record = next(r for r in ArchiveIterator(stream) if r.rec_type == "response")
        html = record.content_stream().read().decode("utf-8")
    assert [(n["kind"], n.get("spdx")) for n in detect_rights_notices(html)] == [
        ("cc_license", "CC-BY-SA-4.0")
    ]


# --- government terms -----------------------------------------------------------------------------
# After the 政府標準利用規約（第2.0版） template that ministries publish as 「当省ウェブサイトの利用について」.
GOV_STANDARD_2 = """
<h2>当省ウェブサイトの利用について</h2>
<p>当ウェブサイトで公開している情報（以下「コンテンツ」といいます。）は、別の利用ルールが適用されるコンテンツを除き、
どなたでも以下の1）～7）に従って、複製、公衆送信、翻訳・変形等の翻案等、自由に利用できます。商用利用も可能です。</p>
<h3>1）出典の記載について</h3>
<p>ア　コンテンツを利用する際は出典を記載してください。出典の記載方法は以下のとおりです。</p>
<p>（出典記載例）出典：〇〇省ホームページ（当該ページのURL）</p>
<h3>7）その他</h3>
<p>ア　本利用ルールは、政府標準利用規約（第2.0版）に準拠しています。</p>
<p>イ　本利用ルールは、クリエイティブ・コモンズ・ライセンスの表示4.0 国際
（<a href="https://creativecommons.org/licenses/by/4.0/legalcode.ja">https://creativecommons.org/licenses/by/4.0/legalcode.ja</a>
に規定される著作権利用許諾条件。以下「CC BY」といいます。）と互換性があり、
本利用ルールが適用されるコンテンツはCC BYに従うことでも利用することができます。</p>
"""
# After the Digital Agency's site terms under 公共データ利用規約（第1.0版） (2024).
PDL_1 = """
<p>本ウェブサイトで公開しているコンテンツは、別の利用ルールが適用されるものを除き、
公共データ利用規約（第1.0版）（PDL1.0）に従い、どなたでも自由に利用できます。</p>
<p>（出典記載例）出典：デジタル庁ウェブサイト（当該ページのURL）、公共データ利用規約（第1.0版）</p>
"""


@pytest.mark.parametrize(
    "text, terms, match",
    [
        (GOV_STANDARD_2, "gov-standard-2.0", "政府標準利用規約（第2.0版）"),
        ("本ウェブサイトのコンテンツは、政府標準利用規約（第２．０版）に準拠しています。", "gov-standard-2.0", "政府標準利用規約（第２．０版）"),
        ("本利用ルールは、政府標準利用規約（第1.0版）に準拠しています。", "gov-standard-1.0", "政府標準利用規約（第1.0版）"),
        ("政府標準利用規約に準拠", "gov-standard", "政府標準利用規約"),
        ("These Terms of Use are compatible with the Government of Japan Standard Terms of Use (Version 2.0).",
         "gov-standard-2.0", "Government of Japan Standard Terms of Use (Version 2.0)"),
        (PDL_1, "pdl-1.0", "公共データ利用規約（第1.0版）"),
        ("Content on this website is available under the Public Data License (Version 1.0).", "pdl-1.0",
         "Public Data License"),
        ("出典：B省ウェブサイト（URL）、PDL1.0", "pdl-1.0", "PDL1.0"),
        ("利用の際は出典を明記してください。", "attribution-notice", "出典を明記"),
    ],
    ids=["gov-standard-2.0-template", "full-width-version", "gov-standard-1.0", "unversioned", "english-2.0",
         "pdl-1.0", "pdl-english", "pdl-short", "attribution-only"],
)  # fmt: skip
def test_gov_terms(text, terms, match):
    found = [n for n in detect_rights_notices(text) if n["kind"] == "gov_standard_terms"]
    assert [(n["terms"], n["match"]) for n in found] == [(terms, match)]


def test_gov_template_also_yields_its_cc_by_link():
    kinds = [(n["kind"], n.get("spdx") or n.get("terms")) for n in detect_rights_notices(GOV_STANDARD_2)]
    assert kinds == [("cc_license", "CC-BY-4.0"), ("gov_standard_terms", "gov-standard-2.0")]


@pytest.mark.parametrize(
    "text",
    ["出典：Wikipedia", "出典は末尾に示す。", "利用規約に同意します"],
)
def test_ordinary_citations_are_not_gov_terms(text):
    assert detect_rights_notices(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "<p>無断転載</p>" + " \n" * 100_000,  # took 25 s per 400 blanks with \s* between the words
        "<title>" * 100_000,  # blank runs between tags: 214 s before runs were collapsed in one pass
        "<a " * 100_000,  # a tag that never closes
        "<script>" * 5_000,
        "<p title='unbalanced>" * 20_000,
    ],
    ids=["blank-run", "empty-tags", "unclosed-tags", "unclosed-scripts", "unbalanced-quotes"],
)
def test_broken_markup_stays_linear(text):
    started = time.perf_counter()
    detect_rights_notices(text)
    assert time.perf_counter() - started < 2.0
