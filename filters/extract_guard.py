"""Main-text extraction in a child process with a deadline, so one pathological page cannot stall
a long-lived worker (a Ray actor): trafilatura has no time limit of its own when called as a
library (adbar/trafilatura#704), and a 1 MiB page of 70,000 table cells keeps it busy 16-22 s.

The child process and its deadline are datatrove's ``ExtractorSandbox``; this module adds what the
pipeline needs around it: a status per document instead of exceptions, exceptions raised inside
trafilatura kept apart from dead children, and an explicit start method.

Start method: fork. A forked child inherits the parent's imported and warmed-up trafilatura, so
a new child is ready in 10-25 ms; forkserver took 0.5 s and spawn 0.45 s (importing trafilatura
again), close to a 0.5 s deadline that also bounds the warm-up (benchmarks/extract_guard.py).
Forking a process that has threads (Ray's core worker and gRPC, pyarrow's pool: 23 OS threads in
a Ray actor) is safe only if the child touches nothing those threads may have locked; the child
runs trafilatura and lxml only and talks to the parent through one pipe. Checked in a real Ray
actor (benchmark --ray) and under a busy pyarrow pool (tests). Python 3.12+ warns about fork in a
threaded process and 3.14 makes forkserver the default, hence the explicit context.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import signal
import time
from typing import Self

STATUSES = ("ok", "empty", "timeout", "crashed", "error")
_START_METHOD = "fork"
_WARMUP_PAGE = "<html><body><article><p>吾輩は猫である。名前はまだ無い。</p></article></body></html>"


@dataclasses.dataclass(frozen=True)
class ExtractionResult:
    text: str | None
    status: str  # one of STATUSES
    seconds: float  # wall time in the parent, a child restart included
    detail: str = ""  # the exception for "error", the cause for "timeout" and "crashed"


class ExtractionError(RuntimeError):
    """An exception raised by trafilatura in the child, carried back as a plain message."""


def _extract_in_child(html: str, url: str | None = None, params: dict | None = None):
    # datatrove's worker loop catches nothing: an exception would end the child, and upstream's
    # parent, which keeps its own copy of the child's pipe end open, would only notice at the
    # deadline (measured 2.1 s for a 2 s timeout) and then restart. Returned as a value instead, it
    # takes the sandbox's `isinstance(result, Exception)` path and the child lives on. Only the
    # message crosses the pipe: lxml's exceptions do not all pickle.
    from filters.html import extract_main_text

    try:
        return extract_main_text(html, url, params)
    except Exception as exc:  # noqa: BLE001 - every failure becomes status "error"
        return ExtractionError(f"{type(exc).__name__}: {exc}")


def _sandbox_class():
    try:
        from datatrove.pipeline.extractors.base import ExtractorSandbox
    except ImportError as exc:
        raise ImportError("guarded extraction needs datatrove: pip install 'datatrove>=0.10.1'") from exc
    from loguru import logger

    # The sandbox logs an INFO line ("Found 0 alive processes to terminate") at every exit, which
    # Ray forwards to the driver's terminal; timeouts reach the manifest as statuses instead.
    logger.disable("datatrove.pipeline.extractors")

    class ForkSandbox(ExtractorSandbox):
        """ExtractorSandbox with its child started from an explicit multiprocessing context.

        Upstream starts `multiprocessing.Process(target=self._worker)` from the default context.
        Under forkserver or spawn that pickles the sandbox itself, and after the first restart its
        list of started processes no longer pickles ("cannot pickle 'weakref.ReferenceType'"):
        measured with datatrove 0.10.1, the first child works and every restart fails. This copy
        of `_ensure_process` differs in `self.context`, in closing the parent's copy of the
        child's pipe end, and in dropping dead processes from `all_processes`, which otherwise
        grows by one per timeout for the life of the actor.
        """

        context = multiprocessing.get_context(_START_METHOD)

        def _worker(self, conn, extract_fn):
            # A Ray worker handles SIGTERM in Python (it raises SystemExit) and a forked child
            # inherits the handler; the child should just die when the deadline terminates it.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            super()._worker(conn, extract_fn)

        def _ensure_process(self, extract_fn):
            if self.process is not None and self.process.is_alive():
                return
            if self.process is not None:
                self._cleanup_process()
            self.all_processes = [p for p in self.all_processes if p.is_alive()]
            self.parent_conn, self.child_conn = self.context.Pipe()
            self.process = self.context.Process(
                target=self._worker, args=(self.child_conn, extract_fn), daemon=True
            )
            self.process.start()
            # The parent's copy of the child's end: closed, a dead child shows as EOF at once
            # instead of at the deadline (upstream's `_cleanup_process` closes it again, harmlessly).
            self.child_conn.close()
            self.all_processes.append(self.process)
            if self.parent_conn.poll(self.timeout):
                self.parent_conn.recv()  # the worker's "ready" after its warm-up call
            else:
                self._cleanup_process()
                raise TimeoutError(f"extraction child not ready within {self.timeout} s (warm-up)")

    return ForkSandbox


class GuardedExtractor:
    """trafilatura in a child process with a per-document deadline; restarts the child as needed.

    >>> with GuardedExtractor(timeout_seconds=5.0) as extractor:
    ...     result = extractor.extract("<html><body><article><p>" + "梅雨は雨の多い期間のこと。" * 20
    ...                                + "</p></article></body></html>", None)
    >>> result.status, result.text[:9]
    ('ok', '梅雨は雨の多い期間')
    """

    def __init__(self, timeout_seconds: float = 5.0, params: dict | None = None):
        self.timeout_seconds = timeout_seconds
        self.params = params  # trafilatura keywords, e.g. a TRAFILATURA_PRESETS entry; None = default
        self._extract_fn = functools.partial(_extract_in_child, params=params)
        self._sandbox = None

    def __enter__(self) -> Self:
        if self._sandbox is None:
            # Import and warm trafilatura here, once, so that every forked child starts warm and
            # its "ready" handshake (bounded by the same deadline) takes milliseconds.
            _extract_in_child(_WARMUP_PAGE, None, self.params)
            self._sandbox = _sandbox_class()(timeout=self.timeout_seconds, warmup_text=("", None))
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self._sandbox is not None:
            self._sandbox.__exit__(exc_type, exc_value, traceback)
            self._sandbox = None

    def extract(self, html: str, url: str | None) -> ExtractionResult:
        """Main text of one page, or why there is none: never raises for a bad page."""
        self.__enter__()
        start = time.monotonic()
        text, detail = None, ""
        try:
            text = self._sandbox.process_document((html, url), self._extract_fn)
            status = "ok" if text else "empty"
        except TimeoutError as exc:
            status, detail = "timeout", str(exc)
        except (EOFError, OSError) as exc:
            # The child died (OOM killer, a crash in lxml) or its pipe broke: start afresh.
            self._sandbox._cleanup_process()
            status, detail = "crashed", f"child died or its pipe broke ({type(exc).__name__})"
        except ExtractionError as exc:
            status, detail = "error", str(exc)
        return ExtractionResult(text or None, status, time.monotonic() - start, detail)
