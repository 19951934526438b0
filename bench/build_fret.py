"""Benchmark: build_fret on the first K passages of the manpages dev corpus, offline defaults.

Prints per-stage wall time, LLM calls and tokens, examples produced, and the share of
positives that are not the seed; then reruns in the same folder to show that a finished run
makes no LLM calls. Only corpus passages are used (never the benchmark's queries or qrels).

    python bench/build_fret.py --passages 100 --out runs/bench-build-fret-100
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from gecko_distill import FRetConfig, RetrieveConfig, build_fret, load_passages
from gecko_distill.report import summary_table

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "manpages" / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--passages", type=int, default=100, help="K: the first K passages")
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="default runs/bench-build-fret-K")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = args.out or Path("runs") / f"bench-build-fret-{args.passages}"

    passages = load_passages(args.corpus, limit=args.passages).records
    config = FRetConfig(retrieve=RetrieveConfig(top_n=args.top_n))
    started = time.perf_counter()
    fret = build_fret(passages, config=config, output_dir=out)
    cold = time.perf_counter() - started
    print(f"build_fret on the first {len(passages)} passages of {args.corpus}, top-n {args.top_n}:")
    print(summary_table(fret.stats))
    gen, rel = fret.stats["generate"], fret.stats["relabel"]
    figures = {
        "passages": len(passages),
        "examples": len(fret),
        "positive_not_seed": rel["positive_not_seed"],
        "ql_rc_top1_agreement": rel.get("ql_rc_top1_agreement"),
        "wall_s": {stage: round(fret.stats[stage]["wall_time_s"], 1) for stage in ("generate", "retrieve", "relabel")},
        "llm_calls": {"generate": gen["llm_calls"], "relabel": rel["llm_calls"]},
        "llm_tokens": {
            "generate": gen["llm_prompt_tokens"] + gen["llm_completion_tokens"],
            "relabel": rel["llm_prompt_tokens"],
        },
        "total_wall_s": round(cold, 1),
    }

    started = time.perf_counter()
    again = build_fret(passages, config=config, output_dir=out)
    figures["rerun_wall_s"] = round(time.perf_counter() - started, 1)
    figures["rerun_llm_calls"] = again.stats["generate"]["llm_calls"] + again.stats["relabel"]["llm_calls"]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
