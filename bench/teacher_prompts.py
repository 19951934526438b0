"""Benchmark: does the teacher rank seeds better with few-shot scoring prompts?

On the queries and candidates of a finished ``retrieve`` stage (a ``build_fret``/``run``
output folder), it runs the relabel stage's teacher check for each number of demonstrations
(``RelabelConfig.few_shot``) and prints, per signal, how often the seed passage is ranked first
among the candidates, against chance. The seed is a noisy stand-in for the truth (Gecko finds a
better positive than the seed in about 15% of cases), but a signal that ranks it first more
often is the better teacher. Answers go through the run's LLM cache, so a rerun costs nothing.

    python bench/teacher_prompts.py runs/full --corpus ../shared/data/manpages/corpus.jsonl --queries 100
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from gecko_distill import RankedCandidates, RelabelConfig, load_passages
from gecko_distill._io import read_jsonl
from gecko_distill.fret.relabel import _Scorer, _teacher_check, scoring_demos
from gecko_distill.llm import CachedLLM, get_llm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a build_fret/run output folder with a finished retrieve stage")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=100, help="queries in the check (default: 100)")
    parser.add_argument("--few-shot", type=int, nargs="+", default=[0, 1, 2], help="numbers of demonstrations to compare")
    parser.add_argument("--scoring", choices=["fused", "separate"], default="fused")
    parser.add_argument("--llm", default="gemma3-270m")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fret = args.run / "fret" if (args.run / "fret").exists() else args.run
    candidates = read_jsonl(fret / "retrieve" / "records.jsonl", RankedCandidates)
    by_id = {p.id: p for p in load_passages(args.corpus).records}
    llm = CachedLLM(get_llm(args.llm), fret / "llm_cache.sqlite")
    results = []
    for k in args.few_shot:
        config = RelabelConfig(few_shot=k, check_queries=args.queries, scoring=args.scoring)
        started = time.perf_counter()
        scorer = _Scorer(llm, config, scoring_demos(candidates, by_id, config))
        check, _ = _teacher_check(candidates, by_id, scorer, config)
        seconds = time.perf_counter() - started
        row = {
            "few_shot": k,
            "rank_by": check.rank_by,
            "seconds": round(seconds, 1),
            **{name: round(s.seed_top1, 3) for name, s in check.signals.items()},
        }
        results.append(row)
        print(f"few_shot={k}: {check.summary()} -> rank_by {check.rank_by} ({seconds:.0f} s)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
