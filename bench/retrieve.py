"""Retrieval at scale: the approximate index that ``retrieve`` picks against exact flat search.

The vectors are synthetic, because encoding 1M passages with MiniLM on the 2 CPU cores of the
development machine would take hours (about 100 passages/s). They are a seeded, documented
stand-in for normalised sentence embeddings with topical structure:

* a shared direction ``u`` (real embeddings are anisotropic: every pair has a positive cosine);
* 64 topic directions, and ``--clusters`` (3,000) cluster centres, each
  ``normalise(0.8·u + 0.8·topic + g/√d)`` with ``g`` standard normal, so clusters of one
  topic are related;
* cluster sizes drawn log-normally (σ = 1), so a few clusters are large and many are small;
* each passage is ``normalise(centre + s·g/√d)`` with a per-cluster spread ``s`` uniform in
  [0.6, 1.2] (cosine to its centre about 0.65 to 0.85; ``--spread`` changes the range).

The spread was calibrated on real embeddings, by how hard they are for IVF itself. For the
1,024 manpages documents embedded by all-MiniLM-L6-v2 and their 600 real test queries, an
IVF16 index finds 0.42 / 0.59 / 0.77 / 0.93 of the exact top-20 with nprobe 1 / 2 / 4 / 8;
1,024 synthetic points with this spread and 600 perturbed queries give 0.44 / 0.57 / 0.72 /
0.90 (slightly harder); spread [0.4, 1.0] gives 0.58 / 0.69 / 0.82 / 0.94 (easier). Other
statistics at that size: mean pairwise cosine 0.16 (MiniLM on manpages and pydoc topics: 0.16
to 0.27), mean top-1 neighbour cosine 0.47 (0.65 to 0.81) and 20th neighbour 0.27 (0.42 to
0.50), so the synthetic neighbourhoods are looser than real ones, which makes approximate
search harder, not easier. Queries come from the same distribution but are not database rows:
each is a random passage perturbed as ``normalise(x + g/√d)`` (cosine to it about 0.7), as a
generated query is near its seed passage. The search breadth is tuned on a separate set of
perturbed queries (another seed), so the recall below is measured on queries it was not
fitted to.

The approximate index is built and tuned exactly as ``retrieve`` does for a corpus of that
size (:func:`gecko_distill.fret.index.build_index` and :func:`~gecko_distill.fret.index.tune_and_measure`
with the default :class:`~gecko_distill.RetrieveConfig`). Exact search is a FAISS
``IndexFlatIP`` (BLAS). With ``--threads 1`` the queries-per-second ratio compares the two
fairly: each uses one core.

Usage::

    python bench/retrieve.py --n 100000 --queries 5000                   # development size
    python bench/retrieve.py --n 1000000 --threads 1 --out bench/results/retrieve.json
    python bench/retrieve.py --n 200000 --index auto hnsw                  # compare HNSW too

Prints a markdown table and the JSON of all figures (also written to ``--out`` if given).
Targets: recall@20 ≥ 0.95 of exact search at ≥ 10× its queries per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="database vectors (passages)")
    p.add_argument("--dim", type=int, default=384, help="dimension (all-MiniLM-L6-v2: 384)")
    p.add_argument("--queries", type=int, default=10_000, help="queries searched with the approximate index")
    p.add_argument(
        "--exact-queries", type=int, default=1_000, help="of those, how many exact search times (recall is over these)"
    )
    p.add_argument("--threads", type=int, default=1, help="threads for FAISS and BLAS (default 1)")
    p.add_argument("--k", type=int, default=20, help="neighbours per query (retrieve's top_n)")
    p.add_argument("--clusters", type=int, default=3000, help="mixture components")
    p.add_argument(
        "--spread",
        type=float,
        nargs=2,
        default=(0.6, 1.2),
        metavar=("LOW", "HIGH"),
        help="range of the per-cluster spread s (larger: looser clusters, harder for IVF)",
    )
    p.add_argument(
        "--index",
        nargs="+",
        default=["auto"],
        choices=["auto", "ivf", "hnsw"],
        help="approximate indexes to measure; auto is what retrieve picks for --n",
    )
    p.add_argument("--nlist-factor", type=float, help="IVF cells per √n (default: RetrieveConfig's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy and faiss start their thread pools

    import faiss
    import numpy as np

    from gecko_distill import RetrieveConfig
    from gecko_distill.fret.index import build_index, choose_index, recall_at_k, tune_and_measure

    faiss.omp_set_num_threads(args.threads)
    config = RetrieveConfig(top_n=args.k, **({"ivf_nlist_factor": args.nlist_factor} if args.nlist_factor else {}))
    started = time.perf_counter()
    vectors = mixture(args.n, args.dim, args.clusters, args.spread, args.seed, np)
    queries = perturbed(vectors, args.queries, args.seed + 1, np)
    tune_queries = perturbed(vectors, 2 * config.recall_queries, args.seed + 2, np)
    generate_s = time.perf_counter() - started
    print(f"generated {args.n:,} × {args.dim} vectors and {args.queries:,} queries in {generate_s:.1f} s", file=sys.stderr)

    rows = []
    exact = measure(lambda: build_index(vectors, config, kind="flat"), queries[: args.exact_queries], args.k, faiss)
    exact_ids = exact.pop("ids")
    rows.append({**exact, "index": "Flat (exact)", "recall_at_k": 1.0, "speedup": 1.0})
    for choice in args.index:
        kind = choose_index(args.n, config) if choice == "auto" else choice
        if kind == "flat":
            print(f"auto picks exact search for {args.n:,} vectors (exact_up_to={config.exact_up_to:,})", file=sys.stderr)
            continue

        def build(kind=kind):
            index, description = build_index(vectors, config, kind=kind)
            return index, description

        approx = measure(
            build,
            queries,
            args.k,
            faiss,
            tune=lambda index, description: tune_and_measure(index, description, vectors, tune_queries, args.k, config),
        )
        ids = approx.pop("ids")
        recall = recall_at_k(ids[: args.exact_queries], exact_ids)
        rows.append(
            {
                **approx,
                "recall_at_k": round(recall, 4),
                "speedup": round(approx["qps"] / exact["qps"], 1),
                "chosen_by": "auto" if choice == "auto" else "--index",
            }
        )

    result = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "threads_used": args.threads,
            "platform": platform.platform(),
            "faiss": faiss.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "config": config.model_dump(),
        "generate_s": round(generate_s, 1),
        "results": rows,
        "targets": {
            "recall_at_k": 0.95,
            "speedup": 10.0,
            "met": all(r["recall_at_k"] >= 0.95 and r["speedup"] >= 10 for r in rows[1:]) and len(rows) > 1,
        },
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(table(rows, args))
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def mixture(n: int, dim: int, clusters: int, spread: tuple[float, float], seed: int, np, chunk: int = 100_000):
    """``n`` unit vectors from the topic/cluster mixture of the module docstring."""
    rng = np.random.default_rng(seed)
    shared = unit(rng.standard_normal(dim), np)
    topics = unit(rng.standard_normal((64, dim)), np)
    centres = unit(
        0.8 * shared + 0.8 * topics[rng.integers(64, size=clusters)] + rng.standard_normal((clusters, dim)) / np.sqrt(dim), np
    )
    weights = rng.lognormal(0.0, 1.0, clusters)
    spread = rng.uniform(*spread, clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        lab = labels[start : start + chunk]
        noise = rng.standard_normal((len(lab), dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        out[start : start + chunk] = unit(centres[lab].astype(np.float32) + spread[lab, None].astype(np.float32) * noise, np)
    return out


def perturbed(vectors, count: int, seed: int, np):
    """``count`` queries: random database vectors plus noise of the same norm, renormalised."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(len(vectors), size=count)
    noise = rng.standard_normal((count, vectors.shape[1]), dtype=np.float32) / np.float32(np.sqrt(vectors.shape[1]))
    return unit(vectors[rows] + noise, np)


def unit(x, np):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def measure(build, queries, k: int, faiss, tune=None) -> dict:
    """Build (and tune) an index, then time a search of all ``queries`` (after one warm-up)."""
    from gecko_distill.fret.index import search

    started = time.perf_counter()
    index, description = build()
    build_s = time.perf_counter() - started
    figures = {"index": description, "build_s": round(build_s, 2)}
    if tune is not None:
        started = time.perf_counter()
        check = tune(index, description)
        figures.update(index=check.description, tune_s=round(time.perf_counter() - started, 2), tuned_recall_at_k=check.recall)
    search(index, queries[:64], k)  # warm-up
    started = time.perf_counter()
    _, ids = search(index, queries, k)
    search_s = time.perf_counter() - started
    figures.update(
        queries=len(queries),
        search_s=round(search_s, 2),
        qps=round(len(queries) / search_s, 1),
        index_bytes=int(faiss.serialize_index(index).nbytes),
        ids=ids,
    )
    return figures


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"{args.n:,} × {args.dim}-d vectors, top-{args.k}, {args.threads} thread(s) "
        f"(QPS ratios at 1 thread compare the indexes fairly: each search uses one core)",
        "",
        f"| index | build s | tune s | queries | QPS | speed-up | recall@{args.k} | index MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['index']} | {r['build_s']:.1f} | {r.get('tune_s', 0):.1f} | {r['queries']:,} | {r['qps']:,.0f} "
            f"| {r['speedup']:.1f}× | {r['recall_at_k']:.4f} | {r['index_bytes'] / 2**20:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
