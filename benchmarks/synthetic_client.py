"""How many chat completions per second ChatClient sustains against a server that answers at once.

    python benchmarks/synthetic_client.py [--seconds 3.0] [--concurrency 1 8 64] [--max-tokens 64]
                                          [--same-process]

The server is tests/servers/chat.py's ChatServer on 127.0.0.1 with no delay: it answers the
JSQuAD 梅雨 paragraph cut to ``--max-tokens`` characters (64 by default: a 64-character reply, or
16 content deltas of 4 characters when streaming, plus the role, usage and [DONE] events). So the
figure is the client's own ceiling (JSON or SSE parsing, requests/urllib3, threads), plus the
cost of a Python http.server answering. By default the server runs in a child process so that
it does not share the client's GIL; ``--same-process`` puts it in a thread of this one.

Each row runs ``complete_many`` over distinct requests for ``--seconds`` (after a short warm-up)
and prints requests/s, the mean time per request as seen by one of the ``concurrency`` workers,
and the CPU time per request of the client process (all its threads; with ``--same-process`` the
server's too) and of the server's child process (read from /proc, so Linux only). Figures only;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from servers.chat import ChatServer  # noqa: E402

from sources.chat_client import ChatClient, ChatRequest, ChatResult  # noqa: E402
from sources.http_client import RetryPolicy  # noqa: E402


def serve() -> None:
    """Child mode: run a ChatServer, print its URL, stop when stdin closes."""
    with ChatServer() as server:
        print(server.url, flush=True)
        sys.stdin.read()


def requests_until(deadline: float, max_tokens: int):
    for i in itertools.count():
        if time.monotonic() >= deadline:
            return
        yield ChatRequest(
            "bench-model",
            ({"role": "user", "content": f"梅雨について説明してください。（{i}）"},),
            {"temperature": 0.0, "max_tokens": max_tokens},
        )


def measure(
    url: str, stream: bool, concurrency: int, seconds: float, max_tokens: int, server_pid: int | None
) -> dict[str, float]:
    """Answers, failures, elapsed seconds and CPU seconds (this process; the server's child) of
    complete_many running for ``seconds``."""
    retry = RetryPolicy(max_attempts=1)
    with ChatClient(url, stream=stream, concurrency=concurrency, retry=retry, timeout_seconds=30.0) as client:
        # Warm-up: open the pooled connections and start the threads.
        for _ in client.complete_many(requests_until(time.monotonic() + 0.3, max_tokens)):
            pass
        started, cpu, server_cpu = time.monotonic(), time.process_time(), _cpu_seconds(server_pid)
        answers = failures = 0
        for _, result in client.complete_many(requests_until(started + seconds, max_tokens)):
            if isinstance(result, ChatResult):
                answers += 1
            else:
                failures += 1
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        after = _cpu_seconds(server_pid)
    server_used = after - server_cpu if after is not None and server_cpu is not None else float("nan")
    return {
        "answers": answers,
        "failures": failures,
        "elapsed": elapsed,
        "cpu": cpu,
        "server_cpu": server_used,
    }


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` from /proc (Linux), None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per row (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--max-tokens", type=int, default=64, help="reply length in characters (default 64)")
    parser.add_argument(
        "--same-process", action="store_true", help="run the server in a thread of this process"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    where = "in a thread" if args.same_process else "in a child process"
    print(
        f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()},"
        f" Python {platform.python_version()}; server {where}"
    )
    child = server = None
    if args.same_process:
        server = ChatServer()
        url = server.url
    else:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        url = child.stdout.readline().strip()
    try:
        print(
            f"{'mode':<14}{'concurrency':>12}{'requests':>10}{'seconds':>9}{'req/s':>9}{'ms/request':>12}"
            f"{'client CPU ms/req':>19}{'server CPU ms/req':>19}"
        )
        for stream in (False, True):
            for concurrency in args.concurrency:
                pid = child.pid if child is not None else None
                m = measure(url, stream, concurrency, args.seconds, args.max_tokens, pid)
                rate = m["answers"] / m["elapsed"]
                per_request = 1000 * concurrency / rate if rate else float("nan")
                per_answer = 1000 / m["answers"] if m["answers"] else float("nan")
                note = f"  ({m['failures']} failed)" if m["failures"] else ""
                mode = "streaming" if stream else "non-streaming"
                client_cpu, server_cpu = m["cpu"] * per_answer, m["server_cpu"] * per_answer
                print(
                    f"{mode:<14}{concurrency:>12}{m['answers']:>10}{m['elapsed']:>9.1f}{rate:>9.0f}"
                    f"{per_request:>12.1f}{client_cpu:>19.2f}{server_cpu:>19.2f}{note}"
                )
    finally:
        if server is not None:
            server.close()
        if child is not None:
            child.stdin.close()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
