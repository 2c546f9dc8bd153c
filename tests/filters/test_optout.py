"""Opt-out signals from stored responses: TDMRep spec examples, precedence, noai, URL lists."""

from __future__ import annotations

import gzip
import hashlib
import json
import pathlib
import time

import pytest

from filters.optout import (
    RESERVATION_ORDER,
    UrlList,
    check_optout,
    hash_entry,
    normalise_url,
    robots_noai,
    tdmrep,
)

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "optout"
POLICY = "https://provider.com/policies/policy.json"  # the spec examples' policy URL


def _spec_block(title_start: str) -> list[str]:
    """Lines of one ``### ...`` section of optout_signals_examples.txt."""
    text = (DATA / "optout_signals_examples.txt").read_text(encoding="utf-8")
    for block in text.split("### ")[1:]:
        title, _, body = block.partition("\n")
        if title.startswith(title_start):
            return [line for line in body.splitlines() if line.strip()]
    raise KeyError(title_start)


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line[:40]]


def _page(head: str, body: str = "<p>本文</p>") -> str:
    return f'<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">{head}<title>記事</title></head><body>{body}</body></html>'


def _meta(value: str) -> str:
    return f'<meta name="tdm-reservation" content="{value}">'


# --- TDMRep: the spec's own examples -----------------------------------------------------------
def test_spec_http_header_example_reserves():
    lines = _spec_block("TDMRep HTTP header")
    assert lines[0] == "HTTP/1.1 200 OK"
    result = tdmrep(_headers(lines[1:]), None)
    assert (result["http_header"], result["policy"], result["effective"], result["decided_by"]) == (
        "1",
        POLICY,
        "reserved",
        "http-header",
    )
    assert result["well_known"] == "not_checked"


def test_spec_html_meta_example_reserves():
    head = "\n".join(_spec_block("TDMRep HTML meta"))
    result = tdmrep([("Content-type", "text/html")], _page(head))
    assert (result["http_header"], result["html_meta"], result["policy"]) == (None, "1", POLICY)
    assert (result["effective"], result["decided_by"]) == ("reserved", "html-meta")


WELL_KNOWN = json.loads((DATA / "tdmrep_well_known_examples.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("rule", WELL_KNOWN, ids=[r["location"] for r in WELL_KNOWN])
def test_well_known_rules_sent_as_headers_give_the_same_reservation(rule):
    # The spec's tdmrep.json entries, served instead as the HTTP headers of a matching page:
    # the JSON's integer 1/0 becomes the header's "1"/"0", and the policy travels with it.
    headers = [("tdm-reservation", str(rule["tdm-reservation"]))]
    if "tdm-policy" in rule:
        headers.append(("tdm-policy", rule["tdm-policy"]))
    result = tdmrep(headers, _page(""))
    assert result["effective"] == {1: "reserved", 0: "not_reserved"}[rule["tdm-reservation"]]
    assert result["policy"] == rule.get("tdm-policy")
    assert result["well_known"] == "not_checked"  # tdmrep.json needs its own fetch


# --- TDMRep precedence: header overrides well-known, meta overrides header -----------------------
@pytest.mark.parametrize(
    "headers, head, expected",
    [
        ([("tdm-reservation", "1")], _meta("0"), ("1", "0", "not_reserved", "html-meta")),
        ([("tdm-reservation", "0")], _meta("1"), ("0", "1", "reserved", "html-meta")),
        ([("tdm-reservation", "1")], _meta("1"), ("1", "1", "reserved", "html-meta")),
        ([("tdm-reservation", "1")], "", ("1", None, "reserved", "http-header")),
        ([("tdm-reservation", "0")], "", ("0", None, "not_reserved", "http-header")),
        ([], _meta("1"), (None, "1", "reserved", "html-meta")),
        ([], "", (None, None, "unset", None)),
        # Absent never resets: other metas (even a tdm-policy) leave the header's value.
        (
            [("tdm-reservation", "1")],
            f'<meta name="tdm-policy" content="{POLICY}">',
            ("1", None, "reserved", "http-header"),
        ),
        # Protocol errors are treated as unset, so they do not override either.
        ([("tdm-reservation", "1")], _meta("yes"), ("1", "invalid:yes", "reserved", "http-header")),
        ([("tdm-reservation", "1")], _meta(""), ("1", "invalid:", "reserved", "http-header")),
        ([("tdm-reservation", "true")], "", ("invalid:true", None, "unset", None)),
        ([("tdm-reservation", "2")], _meta("0"), ("invalid:2", "0", "not_reserved", "html-meta")),
    ],
    ids=[
        "header1-meta0",
        "header0-meta1",
        "header1-meta1",
        "header1-only",
        "header0-only",
        "meta1-only",
        "nothing",
        "absent-meta-keeps-header",
        "invalid-meta-ignored",
        "empty-meta-ignored",
        "invalid-header-only",
        "invalid-header-meta0",
    ],
)
def test_precedence(headers, head, expected):
    result = tdmrep(headers, _page(head))
    assert (result["http_header"], result["html_meta"], result["effective"], result["decided_by"]) == expected


@pytest.mark.parametrize(
    "name", ["tdm-reservation", "TDM-Reservation", "Tdm-Reservation", " tdm-reservation "]
)
def test_header_names_are_case_insensitive(name):
    assert tdmrep([(name, "1")], None)["effective"] == "reserved"


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([("tdm-reservation", "maybe"), ("tdm-reservation", "1")], "1"),
        ([("tdm-reservation", "0"), ("tdm-reservation", "1")], "0"),
        ([("tdm-reservation", "1, 0")], "1"),  # repeated headers folded by a proxy
    ],
    ids=["invalid-then-valid", "first-valid-wins", "comma-folded"],
)
def test_several_headers_take_the_first_valid_and_say_so(headers, expected):
    result = tdmrep(headers, None)
    assert result["http_header"] == expected
    assert len(result["notes"]) == 1 and "used" in result["notes"][0]


def test_one_header_leaves_no_note():
    assert tdmrep([("tdm-reservation", "1")], None)["notes"] == []


@pytest.mark.parametrize(
    "head, expected",
    [
        ('<meta content="1" name="tdm-reservation">', "1"),
        ("<meta name='tdm-reservation' content='1'>", "1"),
        ("<meta name=tdm-reservation content=1>", "1"),
        ("<meta name=tdm-reservation content=1/>", "1"),
        ('<META NAME="TDM-Reservation" CONTENT=" 1 " />', "1"),
        ('<meta\n  name="tdm-reservation"\n  content="0"\n>', "0"),
        ('<meta name="tdm-reservation" data-x="a>b" content="1">', "1"),  # '>' inside a quoted value
        ('<meta property="tdm-reservation" content="1">', None),  # not the spec's attribute
        ('<meta name="robots" content="tdm-reservation">', None),
    ],
    ids=["order", "single-quotes", "unquoted", "unquoted-self-closing", "upper-case", "newlines", "gt-in-value",
         "property", "other-meta"],
)  # fmt: skip
def test_meta_attribute_spellings(head, expected):
    assert tdmrep([], _page(head))["html_meta"] == expected


def test_policy_entities_are_decoded_and_meta_policy_overrides_header_policy():
    head = '<meta name="tdm-reservation" content="1"><meta name="tdm-policy" content="https://a.jp/p.json?v=1&amp;l=ja">'
    result = tdmrep([("tdm-policy", POLICY)], _page(head))
    assert result["policy"] == "https://a.jp/p.json?v=1&l=ja"
    assert tdmrep([("tdm-policy", POLICY)], _page(_meta("1")))["policy"] == POLICY
    assert (
        tdmrep([("tdm-policy", "https://a.jp/p?langs=ja,en")], None)["policy"] == "https://a.jp/p?langs=ja,en"
    )


@pytest.mark.parametrize(
    "html",
    [
        _page("", body=_meta("1")),  # after </head>
        "<html><head>" + "<script>var x = 1;</script>" * 3000 + _meta("1") + "</head></html>",  # past 64 KB
    ],
    ids=["in-body", "past-64KB"],
)
def test_meta_outside_the_scanned_head_is_not_read(html):
    assert tdmrep([], html)["html_meta"] is None


# --- noai / noimageai ----------------------------------------------------------------------------
def test_deviantart_examples():
    lines = _spec_block("DeviantArt-origin")
    meta = next(line for line in lines if line.startswith("<meta"))
    assert robots_noai([], _page(meta))["noai"] and robots_noai([], _page(meta))["noimageai"]
    headers = _headers([line for line in lines if line.startswith("X-Robots-Tag")])
    result = robots_noai(headers, None)
    assert (result["x_robots_tag"], result["noai"], result["noimageai"]) == (
        ["noai", "noimageai"],
        True,
        True,
    )


@pytest.mark.parametrize(
    "headers, head, robots_meta, x_robots_tag, flags",
    [
        ([], '<meta name="robots" content="noindex, noai">', ["noindex", "noai"], [], (True, False, False)),
        ([], '<meta name="ROBOTS" content="NoAI,NoImageAI">', ["noai", "noimageai"], [], (True, True, False)),
        ([], '<meta name="robots" content="noai noimageai">', ["noai", "noimageai"], [], (True, True, False)),
        ([], '<meta name="robots" content="index, follow, noml">', ["index", "follow", "noml"], [], (False, False, True)),
        ([], '<meta name="robots" content="noimageai">', ["noimageai"], [], (False, True, False)),
        ([], '<meta name="robots" content="index,follow">', ["index", "follow"], [], (False, False, False)),
        ([], '<meta name="CCBot" content="noai">', ["ccbot:noai"], [], (True, False, False)),
        # Addressed to another crawler: recorded, but not ours.
        ([], '<meta name="GPTBot" content="noai, noindex">', ["gptbot:noai", "gptbot:noindex"], [], (False, False, False)),
        ([], '<meta name="googlebot" content="noai">', [], [], (False, False, False)),
        ([("X-Robots-Tag", "noai")], "", [], ["noai"], (True, False, False)),
        ([("x-robots-tag", "noindex, noai")], "", [], ["noindex", "noai"], (True, False, False)),
        ([("X-Robots-Tag", "otherbot: noai")], "", [], ["otherbot:noai"], (False, False, False)),
        ([("X-Robots-Tag", "CCBot: noai, noimageai")], "", [], ["ccbot:noai", "ccbot:noimageai"], (True, True, False)),
        ([("X-Robots-Tag", "max-image-preview: large")], "", [], ["max-image-preview:large"], (False, False, False)),
        ([("X-Robots-Tag", "googlebot: noindex"), ("X-Robots-Tag", "noai")], "", [], ["googlebot:noindex", "noai"],
         (True, False, False)),
    ],
    ids=["noindex-noai", "upper-case", "space-separated", "noml", "noimageai-only", "plain-robots", "ccbot-meta",
         "gptbot-meta", "unrecorded-agent", "header", "header-list", "header-other-ua", "header-ccbot",
         "header-valued-directive", "two-headers"],
)  # fmt: skip
def test_robots_tokens(headers, head, robots_meta, x_robots_tag, flags):
    result = robots_noai(headers, _page(head))
    assert result["robots_meta"] == robots_meta
    assert result["x_robots_tag"] == x_robots_tag
    assert (result["noai"], result["noimageai"], result["noml"]) == flags


def test_agents_decide_which_prefixed_tokens_count():
    headers = [("X-Robots-Tag", "otherbot: noai")]
    assert robots_noai(headers, None, agents=("ccbot", "otherbot"))["noai"] is True


def test_real_page_robots_meta_is_not_noai(shared_data):
    # sect.iij.ad.jp's page carries <meta name="robots" content="max-image-preview:large">.
    html = (shared_data / "html_pages_postlight" / "fixtures" / "sect.iij.ad.jp.html").read_text(
        encoding="utf-8"
    )
    result = robots_noai([], html)
    assert result == {"robots_meta": ["max-image-preview:large"], "x_robots_tag": [], "noai": False,
                      "noimageai": False, "noml": False}  # fmt: skip


# --- URL lists ----------------------------------------------------------------------------------
HIDDEN_DOMAIN_HASH = "sha256:" + hashlib.sha256(b"hidden.example").hexdigest()
HIDDEN_URL_HASH = "sha256:" + hashlib.sha256(b"https://blog.example.jp/entry/42").hexdigest()
ASAHI = "https://www.asahi.com/articles/ASM3J5RKFM3JUCLV00W.html"


@pytest.fixture(scope="module")
def takedowns() -> UrlList:
    return UrlList.from_file(DATA / "takedowns_example.txt")


@pytest.fixture(scope="module")
def blocklist() -> UrlList:
    return UrlList.from_lines(["# 海賊版サイト", "example.jp", f"{ASAHI}/", "日本語.jp", "", "  "], "piracy")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://example.jp/", "example.jp"),
        ("http://EXAMPLE.JP", "example.jp"),
        ("https://news.sub.example.jp/a/b?c=d", "example.jp"),
        ("https://example.jp.:443/x", "example.jp"),
        ("https://notexample.jp/", None),
        ("https://example.jp.evil.com/", None),
        ("https://example.co.jp/", None),
        (ASAHI, ASAHI),
        (ASAHI + "/", ASAHI),
        (ASAHI.replace("https://www.asahi.com", "HTTPS://WWW.ASAHI.COM"), ASAHI),
        (ASAHI.replace("https:", "http:"), ASAHI),  # same page under the other scheme
        (ASAHI + "#comments", ASAHI),
        (ASAHI.replace("articles", "ARTICLES"), None),  # paths are case-sensitive
        (ASAHI + "?ref=top", None),
        ("https://www.asahi.com/", None),
        ("https://xn--wgv71a119e.jp/page", "xn--wgv71a119e.jp"),  # 日本語.jp
        ("https://日本語.jp/page", "xn--wgv71a119e.jp"),
        ("not a url", None),
        ("", None),
    ],
)
def test_blocklist_matching(blocklist, url, expected):
    assert blocklist.match(url) == expected


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://piracy.example/manga/1", "piracy.example"),
        ("https://cdn.piracy.example/x.jpg", "piracy.example"),
        ("https://www.example.jp/news/2024/0401.html/", "https://www.example.jp/news/2024/0401.html"),
        ("https://www.example.jp/news/2024/0402.html", None),
        ("https://hidden.example/", HIDDEN_DOMAIN_HASH),
        ("https://img.hidden.example/a.png", HIDDEN_DOMAIN_HASH),
        ("https://nothidden.example/", None),
        ("https://blog.example.jp/entry/42", HIDDEN_URL_HASH),
        ("http://BLOG.example.jp/entry/42/", HIDDEN_URL_HASH),
        ("https://blog.example.jp/entry/420", None),
    ],
)
def test_takedown_file_with_hashed_entries(takedowns, url, expected):
    assert takedowns.match(url) == expected


def test_file_name_and_entries(takedowns):
    assert takedowns.name == "takedowns_example"
    assert len(takedowns.entries) == 4


def test_version_ignores_comments_order_and_spelling_but_not_entries():
    base = UrlList.from_lines(["example.jp", "https://a.jp/x"], "l")
    same = UrlList.from_lines(
        ["# 更新 2025-01", "HTTPS://A.JP/x/", "", "Example.JP  # 重複", "example.jp"], "l"
    )
    other = UrlList.from_lines(["example.jp", "https://a.jp/y"], "l")
    assert base.version == same.version != other.version
    assert base.version == "sha256:" + hashlib.sha256(b"example.jp\nhttps://a.jp/x\n").hexdigest()


@pytest.mark.parametrize("line", ["https://", "localhost", "example.jp/path", "sha256:1234", "http://[::1"])
def test_bad_entries_are_rejected_with_their_line(line):
    with pytest.raises(ValueError, match="line 2"):
        UrlList.from_lines(["example.jp", line], "bad")


def test_hash_entry_hashes_the_normalised_form():
    assert hash_entry("https://Blog.Example.JP/entry/42/") == HIDDEN_URL_HASH
    assert hash_entry(HIDDEN_URL_HASH.upper().replace("SHA256", "sha256")) == HIDDEN_URL_HASH


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://www.yomiuri.co.jp/sports/", "https://www.yomiuri.co.jp/sports"),
        ("http://example.jp:80/", "http://example.jp"),
        ("http://example.jp:8080/a", "http://example.jp:8080/a"),
        ("https://user:pw@example.jp/a", "https://example.jp/a"),
        ("https://example.jp/%e3%81%82", "https://example.jp/%E3%81%82"),
        ("https://example.jp/あ", "https://example.jp/%E3%81%82"),
        ("example.jp/a", None),
    ],
)
def test_normalise_url(url, expected):
    assert normalise_url(url) == expected


# --- check_optout: every signal recorded, the first applicable named ------------------------------
@pytest.mark.parametrize(
    "headers, head, url, expected",
    [
        ([("tdm-reservation", "1")], '<meta name="robots" content="noai">', "https://example.jp/", "tdm_reservation"),
        ([], '<meta name="robots" content="noai">', "https://example.jp/", "noai"),
        ([], '<meta name="robots" content="noml">', "https://www.example.com/", "noai"),
        ([("tdm-reservation", "0")], "", "https://example.jp/", "blocklist"),
        ([], "", "http://piracy.example/", "takedown"),
        ([], '<meta name="robots" content="noimageai">', "https://www.example.com/", None),
        ([("tdm-reservation", "1")], _meta("0"), "https://www.example.com/", None),
    ],
    ids=["tdm-first", "noai-before-lists", "noml", "blocklist-before-takedown", "takedown", "noimageai-is-images",
         "meta-lifts-header"],
)  # fmt: skip
def test_reserved_by_names_the_first_applicable(blocklist, takedowns, headers, head, url, expected):
    result = check_optout(url, headers, _page(head), blocklist=blocklist, takedowns=takedowns)
    assert result.reserved_by == expected
    assert expected is None or expected in RESERVATION_ORDER


def test_signals_are_json_and_name_the_list_version(blocklist):
    result = check_optout("https://sub.example.jp/", [], _page(""), blocklist=blocklist)
    signals = json.loads(json.dumps(result.signals))
    assert signals["blocklist"] == {"list": "piracy", "version": blocklist.version, "match": "example.jp"}
    assert signals["takedowns"] is None
    assert set(signals) == {"tdmrep", "robots", "blocklist", "takedowns"}


def test_real_common_crawl_record_carries_no_opt_out():
    # The one response in CC-MAIN-2024-22's whirlwind sample (tests/data/sources/README.md).
    from warcio.archiveiterator import ArchiveIterator

    path = pathlib.Path(__file__).resolve().parents[1] / "data" / "sources" / "cc_whirlwind.warc.gz"
    with gzip.open(path) as stream:
        record = next(r for r in ArchiveIterator(stream) if r.rec_type == "response")
        html = record.content_stream().read().decode("utf-8")
        url = record.rec_headers.get_header("WARC-Target-URI")
        headers = record.http_headers.headers
    result = check_optout(url, headers, html, takedowns=UrlList.from_lines(["wikipedia.org"], "t"))
    assert result.signals["tdmrep"]["effective"] == "unset"
    assert result.signals["robots"]["robots_meta"] == ["max-image-preview:standard"]
    assert result.reserved_by == "takedown"


@pytest.mark.parametrize(
    "html",
    ["<meta " * 100_000, '<meta name="x content=1 ' * 10_000],  # the first took 60 s with [^>]* tags
    ids=["unclosed-metas", "unbalanced-quotes"],
)
def test_broken_markup_stays_linear(html):
    started = time.perf_counter()
    check_optout("https://example.jp/", [("X-Robots-Tag", "a: " * 10_000)], html)
    assert time.perf_counter() - started < 2.0
