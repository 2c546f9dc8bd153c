"""Timeout-guarded extraction: a slow page times out, a dead child is replaced, the next page works."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import statistics
import threading
import time

import pytest

from filters.extract_guard import STATUSES, ExtractionResult, GuardedExtractor
from filters.html import TRAFILATURA_PRESETS, extract_main_text

JVNDB_URL = "https://jvndb.jvn.jp/ja/contents/2018/JVNDB-2018-013542.html"
TIMEOUT = 0.5
# One table row of 70,000 cells, 1.05 MB, under Common Crawl's 1 MiB-ish truncation: trafilatura
# 2.3.1 spends 16-22 s on it in-process (80,000 short <p> take 15 s; benchmarks/extract_guard.py).
SLOW_PAGE = "<html><body><table><tr>" + "<td>セル</td>" * 70_000 + "</tr></table></body></html>"
PAGE = (
    "<html><body><article><p>"
    + "梅雨は、5月から7月にかけて来る曇りや雨の多い期間のこと。" * 10
    + "</p></article></body></html>"
)


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


@pytest.fixture
def extractor():
    with GuardedExtractor(timeout_seconds=TIMEOUT) as guarded:
        yield guarded
    assert _children() == set()  # __exit__ leaves no child behind


def test_ok_and_empty(extractor):
    ok = extractor.extract(PAGE, None)
    assert (ok.status, ok.text) == ("ok", extract_main_text(PAGE))
    assert ok.seconds < TIMEOUT
    for page in ("", "<html><body></body></html>"):
        assert extractor.extract(page, None) == ExtractionResult(None, "empty", pytest.approx(0, abs=TIMEOUT))
    assert {"ok", "empty"} <= set(STATUSES)


def test_pathological_page_times_out_and_the_next_page_works(extractor):
    started = time.monotonic()
    slow = extractor.extract(SLOW_PAGE, None)
    assert (slow.status, slow.text) == ("timeout", None)
    # The sandbox polls until 0.1 s past the deadline, then terminates the child.
    assert TIMEOUT <= slow.seconds < TIMEOUT + 0.4
    after = extractor.extract(PAGE, None)
    assert after.status == "ok"
    assert time.monotonic() - started < 2 * TIMEOUT + 0.5
    assert extractor.extract(SLOW_PAGE, None).status == "timeout"  # and again
    assert extractor.extract(PAGE, None).status == "ok"


def test_dead_child_is_reported_at_once_and_replaced(extractor):
    assert extractor.extract(PAGE, None).status == "ok"
    (child,) = _children()
    # The OOM killer's way: SIGKILL while the child is busy with a slow page.
    threading.Timer(0.1, os.kill, (child, signal.SIGKILL)).start()
    crashed = extractor.extract(SLOW_PAGE, None)
    assert crashed.status == "crashed"
    assert crashed.seconds < TIMEOUT  # seen as EOF on the pipe, not at the deadline
    assert extractor.extract(PAGE, None).status == "ok"
    assert _children() not in (set(), {child})


def test_exception_in_trafilatura_is_an_error_and_keeps_the_child():
    with GuardedExtractor(timeout_seconds=TIMEOUT, params={"output_format": "no-such-format"}) as guarded:
        first = guarded.extract(PAGE, None)
        children = _children()
        second = guarded.extract(PAGE, None)
        assert (first.status, second.status) == ("error", "error")
        assert "AttributeError" in first.detail
        assert first.seconds < TIMEOUT
        assert _children() == children  # no restart


def test_preset_params_reach_the_child(fixtures_dir):
    page = (fixtures_dir / "postlight_jvndb.jvn.jp.html").read_text(encoding="utf-8")
    for preset, has_table in (("jcorpus", True), ("swallow", False)):
        with GuardedExtractor(timeout_seconds=5.0, params=TRAFILATURA_PRESETS[preset]) as guarded:
            result = guarded.extract(page, JVNDB_URL)
        assert result.status == "ok"
        assert ("基本値: 9.8 (緊急)" in result.text) is has_table, preset


def test_usable_without_a_with_block():
    guarded = GuardedExtractor(timeout_seconds=TIMEOUT)
    try:
        assert guarded.extract(PAGE, None).status == "ok"
    finally:
        guarded.__exit__(None, None, None)
    assert _children() == set()


def test_fork_from_a_process_with_pyarrow_threads_and_a_held_lock():
    # A Ray actor forks from a process with pyarrow's thread pool running and Ray's own threads,
    # any of which may hold a lock at that moment. The child must not need any of them.
    pa = pytest.importorskip("pyarrow")
    import pyarrow.compute as pc

    table = pa.table({"n": pa.chunked_array([list(range(100_000))] * 8)})
    held, release = threading.Lock(), threading.Event()

    def hold():
        with held:
            while not release.is_set():
                pc.sum(table["n"])  # keeps Arrow's pool busy while we fork
                time.sleep(0.001)

    worker = threading.Thread(target=hold, daemon=True)
    worker.start()
    try:
        with GuardedExtractor(timeout_seconds=TIMEOUT) as guarded:
            assert guarded.extract(PAGE, None).status == "ok"
            assert guarded.extract(SLOW_PAGE, None).status == "timeout"
            assert guarded.extract(PAGE, None).status == "ok"  # a fresh fork, threads still busy
    finally:
        release.set()
        worker.join()


def test_guarded_text_is_the_in_process_text_on_real_pages(shared_data):
    """The pipe round trip changes nothing; prints its cost per page (pytest -s).

    Every third postlight page, to keep the suite fast; benchmarks/extract_guard.py runs all 29
    pages in several rounds (overhead under 1 ms a page against 50-70 ms of extraction).
    """
    folder = shared_data / "html_pages_postlight"
    gold = json.loads((folder / "gold.json").read_text(encoding="utf-8"))
    pages = [
        ((folder / g["fixture"]).read_text(encoding="utf-8"), g["url"]) for g in list(gold.values())[::3]
    ]
    in_process, guarded_seconds = [], []
    with GuardedExtractor(timeout_seconds=10.0) as guarded:
        for html, url in pages:
            started = time.perf_counter()
            expected = extract_main_text(html, url)
            in_process.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = guarded.extract(html, url)
            guarded_seconds.append(time.perf_counter() - started)
            assert result.text == expected, url
    overhead = [g - i for g, i in zip(guarded_seconds, in_process)]
    print(
        f"\n{len(pages)} pages: in-process {1000 * statistics.mean(in_process):.1f} ms/page, "
        f"guarded {1000 * statistics.mean(guarded_seconds):.1f} ms/page, "
        f"overhead median {1000 * statistics.median(overhead):.2f} ms"
    )
