"""Throughput of the HTTP LLM clients against a fake server with injected latency, and the
speed-up of a warm cache.

Targets: throughput >= 0.8 x concurrency / latency at each concurrency, and a warm-cache rerun
at least 50x faster than the cold run.

Run from the repository root::

    python bench/llm_client.py                     # both backends, latency 200 ms, c = 1, 8, 32
    python bench/llm_client.py --backend openai --concurrency 1 8 32 64
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_servers import FakeGeminiServer, FakeOpenAIServer  # noqa: E402

from gecko_distill.llm import CachedLLM, GenerationRequest  # noqa: E402

KEY = "bench-key"


class ServerProcess:
    """A fake server in its own process, as a real server would be (no shared GIL)."""

    def __init__(self, url: str):
        self.url = url

    def requests(self) -> int:
        with urllib.request.urlopen(self.url + "/_stats") as response:
            return json.load(response)["requests"]


def _serve(backend: str, latency: float, max_handlers: int, conn, stop) -> None:
    server_cls = FakeGeminiServer if backend == "gemini" else FakeOpenAIServer
    with server_cls(api_key=KEY, latency_s=latency, max_handlers=max_handlers, max_lifetime_s=600) as server:
        conn.send(server.url)
        stop.wait()


@contextlib.contextmanager
def server_process(backend: str, latency: float, concurrency: int):
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(backend, latency, max(64, 2 * concurrency), child, stop), daemon=True)
    proc.start()
    try:
        yield ServerProcess(parent.recv())
    finally:
        stop.set()
        proc.join(timeout=10)


def make_llm(backend: str, server, concurrency: int):
    options = dict(concurrency=concurrency, timeout_s=30)
    if backend == "gemini":
        from gecko_distill.llm.gemini import GeminiLLM

        return GeminiLLM("gemini-2.5-flash", api_key=KEY, base_url=server.url, **options)
    from gecko_distill.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM("bench-model", provider="vllm", api_key=KEY, base_url=server.url + "/v1", **options)


def requests(n: int, tag: str) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=f"Passage: {tag} passage number {i} about geckos\nTask:") for i in range(n)]


def throughput(backend: str, latency: float, concurrency: int, per_slot: int) -> tuple[int, float]:
    with server_process(backend, latency, concurrency) as server:
        llm = make_llm(backend, server, concurrency)
        llm.generate(requests(concurrency, "warm-up"))  # open the connections, start the event loop
        batch = requests(concurrency * per_slot, f"c{concurrency}")
        started = time.perf_counter()
        results = llm.generate(batch)
        elapsed = time.perf_counter() - started
        llm.close()
    assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
    return len(batch), elapsed


def cache_speedup(backend: str, latency: float, concurrency: int, n: int) -> tuple[float, float]:
    with server_process(backend, latency, concurrency) as server, tempfile.TemporaryDirectory() as tmp:
        llm = make_llm(backend, server, concurrency)
        cached = CachedLLM(llm, Path(tmp) / "cache.sqlite")
        batch = requests(n, "cache")
        started = time.perf_counter()
        cold = cached.generate(batch)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = cached.generate(batch)
        warm_s = time.perf_counter() - started
        assert all(r.cached for r in warm) and [r.text for r in warm] == [r.text for r in cold]
        assert server.requests() == n  # the warm run sent nothing
        llm.close()
    return cold_s, warm_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["openai", "gemini", "both"], default="both")
    parser.add_argument("--latency", type=float, default=0.2, help="injected server latency, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--per-slot", type=int, default=6, help="requests per concurrency slot")
    parser.add_argument("--cache-requests", type=int, default=256)
    args = parser.parse_args()
    backends = ["openai", "gemini"] if args.backend == "both" else [args.backend]
    failed = False
    print(f"fake server latency {args.latency * 1000:.0f} ms; target throughput >= 0.8 x concurrency / latency")
    print(f"{'backend':8} {'conc':>5} {'requests':>8} {'seconds':>8} {'req/s':>8} {'target':>8} {'ratio':>6}")
    for backend in backends:
        for c in args.concurrency:
            n, elapsed = throughput(backend, args.latency, c, args.per_slot)
            rate, ideal = n / elapsed, c / args.latency
            ok = rate >= 0.8 * ideal
            failed |= not ok
            print(
                f"{backend:8} {c:>5} {n:>8} {elapsed:>8.2f} {rate:>8.1f} {0.8 * ideal:>8.1f} {rate / ideal:>6.2f}{'' if ok else '  BELOW TARGET'}"
            )
    print(f"\nwarm-cache rerun ({args.cache_requests} requests, concurrency {max(args.concurrency)}); target >= 50x")
    for backend in backends:
        cold, warm = cache_speedup(backend, args.latency, max(args.concurrency), args.cache_requests)
        ok = cold / warm >= 50
        failed |= not ok
        print(
            f"{backend:8} cold {cold:6.2f}s  warm {warm * 1000:7.1f} ms  speed-up {cold / warm:8.0f}x{'' if ok else '  BELOW TARGET'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
