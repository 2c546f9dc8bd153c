"""What the timeout guard around trafilatura costs, on the 29 real pages of html_pages_postlight.

    python benchmarks/extract_guard.py            # per-page overhead, restart cost, start methods
    python benchmarks/extract_guard.py --slow     # also time the pathological page in-process (~16 s)
    python benchmarks/extract_guard.py --ray      # also run the guard inside a Ray actor

Prints figures; asserts nothing except that guarded and in-process texts are equal.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("JCORPUS_SHARED_DATA", REPO.parent / "shared" / "data"))

from filters.extract_guard import GuardedExtractor, _sandbox_class
from filters.html import extract_main_text

SLOW_PAGE = "<html><body><table><tr>" + "<td>セル</td>" * 70_000 + "</tr></table></body></html>"
PAGE = "<html><body><article><p>" + "梅雨は雨の多い期間のこと。" * 20 + "</p></article></body></html>"


def load_pages() -> list[tuple[str, str | None]]:
    folder = SHARED / "html_pages_postlight"
    gold = json.loads((folder / "gold.json").read_text(encoding="utf-8"))
    return [((folder / g["fixture"]).read_text(encoding="utf-8"), g["url"]) for g in gold.values()]


def length_of(html: str, url: str | None = None) -> int:
    return len(html)


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def per_page_overhead(pages, rounds: int) -> None:
    in_process = {i: [] for i in range(len(pages))}
    guarded = {i: [] for i in range(len(pages))}
    with GuardedExtractor(timeout_seconds=30.0) as extractor:
        for r in range(rounds):
            order = range(len(pages)) if r % 2 == 0 else reversed(range(len(pages)))
            for i in order:
                html, url = pages[i]
                started = time.perf_counter()
                expected = extract_main_text(html, url)
                in_process[i].append(time.perf_counter() - started)
                started = time.perf_counter()
                result = extractor.extract(html, url)
                guarded[i].append(time.perf_counter() - started)
                assert result.text == expected, url
    inp = [statistics.median(v) for v in in_process.values()]
    grd = [statistics.median(v) for v in guarded.values()]
    diff = [g - i for g, i in zip(grd, inp)]
    print(f"{len(pages)} pages x {rounds} rounds (median per page, then over pages)")
    print(f"  in-process trafilatura: mean {ms(statistics.mean(inp))}, median {ms(statistics.median(inp))}")
    print(f"  guarded (fork sandbox): mean {ms(statistics.mean(grd))}, median {ms(statistics.median(grd))}")
    print(
        f"  overhead per page: mean {ms(statistics.mean(diff))}, median {ms(statistics.median(diff))}"
        f" ({statistics.mean(diff) / statistics.mean(inp):+.1%} of the extraction time)"
    )


def round_trip(pages, rounds: int) -> None:
    # The sandbox with a function that does nothing: the pipe and pickling alone.
    sizes = [len(html.encode()) for html, _ in pages]
    with _sandbox_class()(timeout=10.0, warmup_text=("", None)) as sandbox:
        times = []
        for _ in range(rounds):
            for page in pages:
                started = time.perf_counter()
                sandbox.process_document(page, length_of)
                times.append(time.perf_counter() - started)
    print(
        f"  pipe round trip alone (pages of {min(sizes) // 1024}-{max(sizes) // 1024} KiB, "
        f"median {statistics.median(sizes) // 1024} KiB): median {ms(statistics.median(times))}, "
        f"max {ms(max(times))}"
    )


def restart_cost(rounds: int) -> None:
    with GuardedExtractor(timeout_seconds=10.0) as extractor:
        extractor.extract(PAGE, None)
        warm = [extractor.extract(PAGE, None).seconds for _ in range(rounds)]
        cold = []
        for _ in range(rounds):
            extractor._sandbox._cleanup_process()  # as after a timeout
            cold.append(extractor.extract(PAGE, None).seconds)
    print(
        f"  a small page on a live child {ms(statistics.median(warm))}; after a restart "
        f"{ms(statistics.median(cold))} (fork + warm-up handshake = "
        f"{ms(statistics.median(cold) - statistics.median(warm))})"
    )
    with GuardedExtractor(timeout_seconds=0.5) as extractor:
        result = extractor.extract(SLOW_PAGE, None)
    print(
        f"  the 1.05 MB pathological page under a 0.5 s deadline: {result.status} after {result.seconds:.3f} s"
    )


def _ready(conn) -> None:
    import trafilatura

    trafilatura.extract("")
    conn.send(None)
    conn.recv()


def start_methods(rounds: int) -> None:
    for method in ("fork", "forkserver", "spawn"):
        ctx = multiprocessing.get_context(method)
        times = []
        for _ in range(rounds + 1):
            parent, child = ctx.Pipe()
            started = time.perf_counter()
            process = ctx.Process(target=_ready, args=(child,), daemon=True)
            process.start()
            parent.recv()
            times.append(time.perf_counter() - started)
            parent.send(None)
            process.join()
        print(
            f"  {method:10s} start to ready (trafilatura imported): first {ms(times[0])}, "
            f"then median {ms(statistics.median(times[1:]))}"
        )


def slow_in_process() -> None:
    started = time.perf_counter()
    text = extract_main_text(SLOW_PAGE)
    print(f"  pathological page in-process: {time.perf_counter() - started:.1f} s, {len(text or '')} chars")


def in_ray_actor() -> None:
    import pyarrow  # noqa: F401 - the actor imports what the pipeline's actors import
    import ray

    @ray.remote(num_cpus=1)
    class Extractor:
        def __init__(self):
            self.guard = GuardedExtractor(timeout_seconds=0.5).__enter__()

        def run(self, html):
            result = self.guard.extract(html, None)
            return result.status, round(result.seconds, 3), os.getpid(), multiprocessing.get_start_method()

        def threads(self):
            return len(os.listdir("/proc/self/task"))  # OS threads: Ray's core worker, gRPC, Arrow

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        actor = Extractor.remote()
        results = [ray.get(actor.run.remote(html)) for html in (PAGE, SLOW_PAGE, PAGE, SLOW_PAGE, PAGE)]
        print(f"  inside a Ray actor ({ray.get(actor.threads.remote())} OS threads): {results}")
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slow", action="store_true")
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    pages = load_pages()
    per_page_overhead(pages, args.rounds)
    round_trip(pages, args.rounds)
    restart_cost(args.rounds)
    start_methods(args.rounds)
    if args.slow:
        slow_in_process()
    if args.ray:
        in_ray_actor()


if __name__ == "__main__":
    main()
