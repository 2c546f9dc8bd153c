"""filters.urls: LLM-jp v1's TLD rule, UT1-format domain lists, and the bundled list files."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from filters import urls
from filters.urls import LLM_JP_VALID_TLDS, DomainLists, host_of, tld, valid_tld

# llm-jp/llm-jp-corpus scripts/filters.py has_valid_domain (read at 16f38265 in the reference
# index): the inline set, "work" written twice.
LLM_JP_INLINE_TLDS = {
    "jp",
    "com",
    "net",
    "org",
    "work",
    "info",
    "xyz",
    "biz",
    "me",
    "tv",
    "site",
    "tokyo",
    "cc",
}


def test_valid_tld_list_is_llm_jps():
    assert LLM_JP_VALID_TLDS == frozenset(LLM_JP_INLINE_TLDS)
    assert len(LLM_JP_VALID_TLDS) == 13


def test_sources_md_hashes_match_the_files():
    sources = (urls.DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)`[^\n]*`([0-9a-f]{64})` \|$", sources, flags=re.MULTILINE)
    files = {p.name for p in urls.DATA_DIR.iterdir() if p.name != "SOURCES.md"}
    assert {name for name, _ in rows} == files
    for name, digest in rows:
        assert hashlib.sha256((urls.DATA_DIR / name).read_bytes()).hexdigest() == digest, name


def test_copies_equal_the_shared_snapshots(shared_data):
    pairs = {
        "ja_valid_domains.txt": "ngwords_llm_jp_corpus_v1/dict/ja_valid_domains.txt",
        "LICENSE-llm-jp-corpus": "ngwords_llm_jp_corpus_v1/LICENSE",
        "advertisement_keywords_ja.txt": "cases_hojichar/dict/advertisement_keywords_ja.txt",
        "LICENSE-hojichar": "cases_hojichar/LICENSE",
    }
    for bundled, shared in pairs.items():
        assert (urls.DATA_DIR / bundled).read_bytes() == (shared_data / shared).read_bytes(), bundled


# --- tld / host_of ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.asahi.com/articles/ASM3.html", "com"),
        ("https://www.example.co.jp/", "jp"),
        ("HTTPS://WWW.EXAMPLE.CO.JP/", "jp"),
        ("http://example.jp.:8080/", "jp"),  # trailing dot and port
        ("http://user:pw@example.tokyo/a?b#c", "tokyo"),
        ("example.co.jp/path", "jp"),  # bare host
        ("http://例え.テスト/", "xn--zckzah"),  # IDN TLD: punycode
        ("http://ドメイン名例.ＪＰ/", "jp"),  # full-width TLD is mapped (UTS #46)
        ("http://127.0.0.1/", None),
        ("http://[2001:db8::1]:80/", None),
        ("http://localhost:8000/", None),
        ("", None),
        ("http://", None),
        ("not a url", None),
        ("http://[::1", None),  # urlsplit raises; we return None
    ],
)
def test_tld(url, expected):
    assert tld(url) == expected


def test_host_normalisation():
    assert host_of("http://日本語.jp/") == host_of("http://XN--WGV71A119E.jp/") == "xn--wgv71a119e.jp"
    assert host_of("http://例え。テスト/") == "xn--r8jz45g.xn--zckzah"  # ideographic full stop
    assert host_of("http://😀.example.com/") == "xn--e28h.example.com"  # IDNA 2003 fallback
    assert host_of("https://News.Example.JP.:443/") == "news.example.jp"


# --- valid_tld (LLM-jp has_valid_domain) ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.asahi.com/articles/ASM3.html", True),
        ("https://www.u-tokyo.ac.jp/ja/index.html", True),
        ("https://example.tokyo/", True),
        ("http://example.xyz/", True),
        ("https://example.de/", False),
        ("https://example.co.uk/", False),
        ("http://日本語.日本/", False),  # .日本 (xn--wgv71a) is not on the list
        ("https://ja.wikipedia.org/wiki/梅雨", False),  # the explicit reject
        ("https://en.wikipedia.org/wiki/Rainy_season", True),
        # Upstream's reject is a plain prefix test, so these pass it (ported as is):
        ("http://ja.wikipedia.org/wiki/梅雨", True),
        ("https://ja.m.wikipedia.org/wiki/梅雨", True),
        ("https://ja.wikipedia.org", True),
        ("http://example.jp./", True),  # upstream reads "" as the TLD here; we drop the dot
        ("http://192.0.2.1/", False),
        ("", False),  # upstream asserts
    ],
)
def test_valid_tld(url, expected):
    assert valid_tld(url, LLM_JP_VALID_TLDS) is expected


def test_valid_tld_with_another_allow_list():
    assert valid_tld("https://example.de/", frozenset({"de"}))
    assert not valid_tld("https://example.jp/", frozenset({"de"}))
    assert valid_tld("https://example.jp/")  # the default is LLM-jp's list


# --- DomainLists (UT1 format) -----------------------------------------------------------------


@pytest.fixture
def ut1(tmp_path):
    adult = tmp_path / "adult" / "domains"
    adult.parent.mkdir()
    adult.write_text(
        "\n".join(
            [
                "# comment line",
                "example.com",
                "XXX.Example.NET.",
                "*.wild.jp",
                "",
                "   ",
                "example.org",
                "日本語.jp",  # Unicode entry
                "xn--r8jz45g.xn--zckzah",  # punycode entry (例え.テスト)
                "192.0.2.1",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    gambling = tmp_path / "gambling" / "domains"
    gambling.parent.mkdir()
    gambling.write_text("casino.example.org\nexample.com\n", encoding="utf-8")
    return {"adult": str(adult), "gambling": str(gambling)}


def test_domain_lists_subdomains_and_label_boundaries(ut1):
    lists = DomainLists.load(ut1)
    assert lists.category_of("https://example.com/") == "adult"
    assert lists.category_of("https://a.b.example.com/x") == "adult"
    assert lists.category_of("https://notexample.com/") is None  # suffix, but not a parent domain
    assert lists.category_of("https://example.com.evil.org/") is None
    assert lists.category_of("https://www.wild.jp/") == "adult"  # "*." dropped
    assert lists.category_of("https://wild.jp/") == "adult"
    assert lists.category_of("https://example.net/") is None  # only xxx.example.net is listed


def test_domain_lists_case_trailing_dots_ports_userinfo(ut1):
    lists = DomainLists.load(ut1)
    assert lists.category_of("HTTP://WWW.XXX.EXAMPLE.NET./") == "adult"
    assert lists.category_of("http://user:pw@Example.COM:8080/path?q=1") == "adult"
    assert lists.category_of("example.com") == "adult"  # bare host
    assert lists.category_of("example.com:8443/login") == "adult"


def test_domain_lists_idn_unicode_and_punycode_match_each_other(ut1):
    lists = DomainLists.load(ut1)
    assert lists.category_of("http://日本語.jp/") == "adult"
    assert lists.category_of("http://xn--wgv71a119e.jp/") == "adult"  # listed as Unicode
    assert lists.category_of("http://www.例え.テスト/") == "adult"  # listed as punycode
    assert lists.category_of("http://日本.jp/") is None


def test_domain_lists_ip_entries_match_only_that_address(ut1):
    lists = DomainLists.load(ut1)
    assert lists.category_of("http://192.0.2.1:80/") == "adult"
    assert lists.category_of("http://192.0.2.10/") is None
    assert lists.category_of("http://[2001:db8::1]/") is None


def test_domain_lists_most_specific_domain_and_load_order(ut1):
    lists = DomainLists.load(ut1)
    assert lists.category_of("http://casino.example.org/") == "gambling"  # beats example.org
    assert lists.category_of("http://www.example.org/") == "adult"
    assert lists.categories_of("http://example.com/") == ("adult", "gambling")
    reordered = DomainLists.load({"gambling": ut1["gambling"], "adult": ut1["adult"]})
    assert reordered.category_of("http://example.com/") == "gambling"
    assert len(lists) == 8  # 9 entries, example.com shared


def test_domain_lists_bad_input(ut1):
    lists = DomainLists.load(ut1)
    for url in ("", "not a url", "http://", "http://[::1", "😀"):
        assert lists.category_of(url) is None
    assert DomainLists().category_of("https://example.com/") is None


def test_domain_lists_are_fast(tmp_path):
    # A linear scan of the list would need 40,000 x 50,000 comparisons here; suffix probes need 5.
    path = tmp_path / "domains"
    path.write_text("".join(f"site{i}.example{i % 97}.com\n" for i in range(50_000)), encoding="utf-8")
    lists = DomainLists.load({"adult": str(path)})
    assert len(lists) == 50_000
    queries = [f"https://a.b.c.site{i}.example{i % 97}.com/p" for i in range(0, 50_000, 2)]
    queries += [f"https://www.other{i}.co.jp/" for i in range(15_000)]
    started = time.perf_counter()
    hits = sum(lists.category_of(q) is not None for q in queries)
    elapsed = time.perf_counter() - started
    assert hits == 25_000
    assert elapsed < 5.0, f"{len(queries)} lookups took {elapsed:.2f} s"
