"""Regular expressions on page text against catastrophic backtracking, and the per-document time
budget that the code enforces (filters/text_budget.py, clean.time_budget_seconds).

Every pattern of filters/ and of the sources that read pages is found two ways: compiled module
globals (also those built from word lists) and string literals passed to ``re.*`` in the source.
Each is checked statically for the exponential shape (an unbounded repeat inside another), and run
on adversarial inputs by the ``regex`` module, whose ``timeout=`` stops a runaway match inside the
engine (``re`` cannot be interrupted), so a bad pattern fails this test instead of hanging it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import re._constants as sre
import re._parser as sre_parse
import time
from pathlib import Path

import pytest
import regex

from filters.html import decode_html, undecodable_reason
from filters.optout import check_optout
from filters.preselect import japanese_preselect
from filters.rights import detect_rights_notices
from pipeline.config import CleanConfig
from pipeline.stages.clean_rules import clean_document

REPO = Path(__file__).resolve().parents[2]
# The sources whose regexes see page bytes or text; the others parse API fields and file names.
PAGE_SOURCES = ("sources.warc", "sources.warc_records", "sources.commoncrawl_fetch", "sources.local")
REGEX_CALLS = {"compile", "sub", "subn", "search", "match", "findall", "finditer", "split", "fullmatch"}

# Unbounded repeats inside unbounded repeats that cannot backtrack exponentially, and why.
NESTED_BUT_LINEAR = {
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+": (
        "each repetition starts with '.', which the inner class [A-Za-z0-9-] cannot match"
    ),
    r"\n[^\S\n]*(?:\n[^\S\n]*)+": "each repetition starts with '\\n', which [^\\S\\n] cannot match",
}


def _modules():
    names = []
    for package in ("filters", "filters.classifiers"):
        pkg = importlib.import_module(package)
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.ispkg]
    return [importlib.import_module(n) for n in [*names, *PAGE_SOURCES]]


def _walk(obj, where: str, found: dict, depth: int = 0) -> None:
    if isinstance(obj, re.Pattern):
        found.setdefault((obj.pattern, obj.flags), where)
    elif depth < 3 and isinstance(obj, dict):
        for key, value in obj.items():
            _walk(value, f"{where}[{key!r}]", found, depth + 1)
    elif depth < 3 and isinstance(obj, list | tuple | set | frozenset):
        for i, value in enumerate(obj):
            _walk(value, f"{where}[{i}]", found, depth + 1)


def page_text_patterns() -> dict[tuple, str]:
    """(pattern, flags) -> where it is defined."""
    found: dict[tuple, str] = {}
    for module in _modules():
        for name, value in vars(module).items():
            _walk(value, f"{module.__name__}.{name}", found)
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in REGEX_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str | bytes)
            ):
                found.setdefault((node.args[0].value, 0), f"{module.__name__}:{node.lineno}")
    return found


PATTERNS = page_text_patterns()


def test_the_patterns_are_found():
    # A check that finds nothing proves nothing: these are known to exist.
    wheres = set(PATTERNS.values())
    assert len(PATTERNS) > 60
    for expected in (
        "filters.pii._EMAIL_RE",
        "filters.html._META_CHARSET",
        "filters.boilerplate._BBS_PATTERN",
    ):
        assert expected in wheres


def _has_unbounded(items) -> bool:
    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            if av[1] is sre.MAXREPEAT or _has_unbounded(av[2]):
                return True
        elif op == sre.SUBPATTERN and _has_unbounded(av[3]):
            return True
        elif op == sre.BRANCH and any(_has_unbounded(b) for b in av[1]):
            return True
    return False


def _nested_unbounded(items) -> bool:
    """An unbounded repeat whose body holds another: (a+)+, (\\s*x*)*, the exponential shape."""
    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            if av[1] is sre.MAXREPEAT and _has_unbounded(av[2]):
                return True
            if _nested_unbounded(av[2]):
                return True
        elif op == sre.SUBPATTERN and _nested_unbounded(av[3]):
            return True
        elif op == sre.BRANCH and any(_nested_unbounded(b) for b in av[1]):
            return True
    return False


def test_the_static_check_sees_the_exponential_shape():
    assert _nested_unbounded(sre_parse.parse(r"(a+)+b"))
    assert _nested_unbounded(sre_parse.parse(r"(?:\s*\w+)*$"))
    assert not _nested_unbounded(sre_parse.parse(r"\d{4}[年/]\d{1,2}"))


@pytest.mark.parametrize("key", sorted(PATTERNS, key=repr), ids=lambda k: PATTERNS[k])
def test_no_pattern_nests_unbounded_repeats_unless_proven_linear(key):
    pattern, flags = key
    if _nested_unbounded(sre_parse.parse(pattern, flags)):
        assert pattern in NESTED_BUT_LINEAR, f"{PATTERNS[key]}: nested unbounded repeats in {pattern!r}"


def _adversarial(pattern: str | bytes) -> list[str]:
    """Long runs that make a backtracking engine retry: one character, pairs, the pattern's own
    literal characters in a cycle, each closed by a character that spoils the match."""
    n = 20_000
    runs = [
        "a",
        " ",
        "\t",
        "\n",
        " \n",
        "1",
        "1-",
        "1.",
        "a.",
        "a@",
        "<",
        "&#",
        "。",
        "あ",
        "ア",
        "ー",
        "ｱ",
        "©",
    ]
    inputs = [r * (n // len(r)) + "!" for r in runs]
    inputs += ["http://" + "a" * n, "<meta " + " " * n, "Copyright " * (n // 10), "\ufffd" * n]
    source = pattern if isinstance(pattern, str) else pattern.decode("latin-1")
    own = "".join(sorted({c for c in source if c.isprintable() and c not in "()[]{}?*+|^$\\"}))[:20]
    if own:
        inputs.append(own * (n // len(own)) + "\x00")
    return inputs


@pytest.mark.parametrize("key", sorted(PATTERNS, key=repr), ids=lambda k: PATTERNS[k])
def test_every_pattern_finishes_on_adversarial_input(key):
    pattern, flags = key
    compiled = regex.compile(pattern, flags | regex.VERSION0)
    for text in _adversarial(pattern):
        subject = text if isinstance(pattern, str) else text.encode("utf-8", "replace")
        try:
            compiled.search(subject, timeout=5.0)
            sum(1 for _ in compiled.finditer(subject, timeout=5.0))
        except TimeoutError:
            pytest.fail(f"{PATTERNS[key]}: {pattern!r} backtracks without end on {text[:12]!r}...")


# -- the budget the code enforces --------------------------------------------------------------

# Real Japanese (林芙美子「小さい花」, public domain), then hostile shapes around it.
JA = (REPO / "tests" / "data" / "hostile" / "ja_text.txt").read_text(encoding="utf-8")
HOSTILE_DOCUMENTS = {
    "japanese_then_spaces": JA + " " * 200_000 + "x",
    "digit_run": JA + "1" * 200_000,
    "one_long_line": JA.replace("\n", "") * 200,
    "kuten_only": "。" * 200_000,
    "email_like": JA + "a." * 100_000 + "@",
    "url_like": JA + "http://" + "a" * 200_000,
    "repeated_lines": (JA.splitlines()[3] + "\n") * 20_000,
}


@pytest.mark.parametrize("name", HOSTILE_DOCUMENTS)
def test_a_document_past_its_budget_is_rejected_with_a_reason(name):
    outcome = clean_document(
        HOSTILE_DOCUMENTS[name],
        url=None,
        source="commoncrawl",
        config=CleanConfig(time_budget_seconds=0.0, measure_all=True),
    )
    assert outcome.reason == "time_budget_exceeded"
    assert outcome.detail == "over the 0.0 s budget after normalize"
    assert {
        "stage": "clean",
        "check": "time_budget_seconds",
        "value": 0.0,
        "passed": False,
    } in outcome.decisions


@pytest.mark.parametrize("name", HOSTILE_DOCUMENTS)
def test_hostile_documents_get_a_verdict_within_the_default_budget(name):
    text = HOSTILE_DOCUMENTS[name]
    started = time.process_time()
    outcome = clean_document(text, url=None, source="commoncrawl", config=CleanConfig(measure_all=True))
    page = f'<html lang="ja"><head><title>{name}</title></head><body>{text}</body></html>'
    decoded = decode_html(page.encode(), "text/html; charset=utf-8")
    undecodable_reason(decoded)
    check_optout("https://example.jp/", [], decoded.text)
    detect_rights_notices(decoded.text)
    japanese_preselect(decoded.text)
    seconds = time.process_time() - started
    print(
        f"\n{name}: {len(text):,} characters, clean reason {outcome.reason},"
        f" {seconds:.2f} CPU s (loaded machine)"
    )
    # A verdict by the rules (kept, or a rule's reason): the budget (10 s) is a backstop, not what
    # decided. The spaces collapse in normalisation, so that page is kept.
    assert outcome.reason != "time_budget_exceeded"
    assert (outcome.reason is None) == (name == "japanese_then_spaces")


def test_a_normal_page_is_not_touched_by_the_budget():
    outcome = clean_document(JA, url=None, source="commoncrawl", config=CleanConfig())
    assert all(d["check"] != "time_budget_seconds" for d in outcome.decisions)
