"""Quality benchmark: distil the offline teacher into all-MiniLM-L6-v2 on a BEIR corpus, and ablate.

FRet is built from the passages of ``<beir>/corpus.jsonl`` only (never its queries or qrels).
Every variant trains MiniLM from scratch on its own FRet set and is evaluated on the BEIR test
queries in the Gecko input format at every Matryoshka dimension; the base model is evaluated in
both the plain and the Gecko format. Variants (``--variants``):

* ``gecko``:  positives by RRF of query likelihood and relevance classification, last negative
* ``seed``:   the seed passage stays the positive (no relabelling), last negative
* ``ql``:     positives by query likelihood only
* ``rc``:     positives by relevance classification only
* ``random``: RRF positives, a random (not the last) negative

One :class:`~gecko_distill.llm.CachedLLM` is shared, so the variants reuse the LLM's answers
(generation, and the fused QL/RC scores) and a rerun repeats no LLM call; ``build_fret``
resumes its stage folders.

Usage (the full run is long on CPU; start small)::

    python bench/quality.py --passages 200 --top-n 10 --epochs 1 --out bench/results/quality
    python bench/quality.py --llm fake --passages 12 --top-n 4 --max-steps 2 --batch-size 4 \\
        --beir /tmp/mini_beir --out /tmp/quality-smoke          # plumbing check in seconds

Writes ``quality.json`` (arguments, per-variant FRet stats, timings, all reports), one report
JSON per model, and ``quality.png`` (nDCG@10 etc. against dimension); prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

from gecko_distill import FRetConfig, GenerateConfig, RelabelConfig, RetrieveConfig, build_fret, load_passages
from gecko_distill.embedder.encoding import load_model
from gecko_distill.embedder.evaluate import EvalConfig, RetrievalReport, evaluate, markdown_table, plot_reports
from gecko_distill.embedder.train import TrainConfig, train
from gecko_distill.llm import CachedLLM, get_llm

MANPAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "manpages"  # ../shared beside the checkout
MANPAGES_TASK = "Given a short description of what a command does, retrieve the manual page of that command"

VARIANTS = {
    "gecko": RelabelConfig(rank_by="rrf", negative="last"),
    "seed": RelabelConfig(rank_by="seed", negative="last"),
    "ql": RelabelConfig(rank_by="ql", negative="last"),
    "rc": RelabelConfig(rank_by="rc", negative="last"),
    "random": RelabelConfig(rank_by="rrf", negative="random"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--beir", type=Path, default=MANPAGES, help="BEIR folder (FRet uses only its corpus.jsonl)")
    p.add_argument("--out", type=Path, default=Path("bench/results/quality"))
    p.add_argument("--passages", type=int, default=200, help="seed passages sampled from the corpus (0: all)")
    p.add_argument("--top-n", type=int, default=10, help="retrieved candidates per query (paper: 20)")
    p.add_argument("--llm", default="gemma3-270m", help="teacher for get_llm (\"fake\" for a plumbing check)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--dims", type=int, nargs="+", default=None, help="dims to evaluate (default: 384 256 128 64)")
    p.add_argument("--task", default=MANPAGES_TASK, help="task description of Gecko-format test queries")
    p.add_argument("--seed", type=int, default=0, help="seeds the passage sample")
    p.add_argument("--relabel-batch", type=int, default=RelabelConfig().batch_size,
                   help="queries relabelled per backend call (bigger: more shared passages read once)")
    return p.parse_args()


def sample_passages(beir: Path, n: int, seed: int) -> list:
    passages = load_passages(beir / "corpus.jsonl").records
    if 0 < n < len(passages):
        passages = sorted(random.Random(seed).sample(passages, n), key=lambda p: p.id)
    return passages


def run_variant(name: str, args: argparse.Namespace, passages: list, llm: CachedLLM, embedder, eval_config: EvalConfig) -> dict:
    fret_dir, model_dir = args.out / "fret" / name, args.out / "models" / name
    config = FRetConfig(
        generate=GenerateConfig(),
        retrieve=RetrieveConfig(top_n=args.top_n),
        relabel=VARIANTS[name].model_copy(update={"batch_size": args.relabel_batch}),
    )
    started = time.perf_counter()
    fret = build_fret(passages, llm=llm, embedder=embedder, config=config, output_dir=fret_dir)
    built = time.perf_counter()
    train_config = TrainConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_seq_length=args.max_seq_length,
    )
    train(fret_dir, output_dir=model_dir, config=train_config, overwrite=True)
    trained = time.perf_counter()
    report = evaluate(model_dir, args.beir, dims=args.dims, config=eval_config, label=f"distilled: {name}")
    report.save(args.out / "reports" / f"{name}.json")
    return {
        "variant": name,
        "relabel": VARIANTS[name].model_dump(),
        "examples": len(fret),
        "positive_not_seed": fret.stats["relabel"].get("positive_not_seed"),
        "fret_llm_calls": fret.stats["generate"].get("llm_calls", 0) + fret.stats["relabel"].get("llm_calls", 0),
        "seconds": {"build_fret": round(built - started, 1), "train": round(trained - built, 1),
                    "evaluate": round(time.perf_counter() - trained, 1)},
        "report": report,
    }


def ablation_table(base: RetrievalReport, rows: list[dict]) -> str:
    dims = [s.dim for s in base.scores]
    head = "| model | FRet examples | positive != seed | build s | train s | " + " | ".join(f"nDCG@10 @{d}" for d in dims) + " |"
    lines = [head, "|" + "---|" * 5 + "---:|" * len(dims)]
    lines.append(f"| {base.model} (gecko format) | - | - | - | - | " + " | ".join(f"{s.ndcg_at_10:.3f}" for s in base.scores) + " |")
    for row in rows:
        share = row["positive_not_seed"]
        share = f"{100 * share:.0f}%" if isinstance(share, (int, float)) else "-"
        scores = " | ".join(f"{s.ndcg_at_10:.3f}" for s in row["report"].scores)
        lines.append(
            f"| {row['report'].model} | {row['examples']} | {share} | {row['seconds']['build_fret']} | "
            f"{row['seconds']['train']} | {scores} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    passages = sample_passages(args.beir, args.passages, args.seed)
    print(f"{len(passages)} seed passages from {args.beir / 'corpus.jsonl'}; variants {args.variants}")

    embedder = load_model()
    llm = CachedLLM(get_llm(args.llm), args.out / "llm_cache.sqlite")
    gecko_format = EvalConfig(input_format="gecko", task=args.task)
    base = [
        evaluate(embedder, args.beir, dims=args.dims, config=config, label="all-MiniLM-L6-v2 (base)")
        for config in (EvalConfig(input_format="plain"), gecko_format)
    ]
    for report in base:
        report.save(args.out / "reports" / f"base-{report.config.input_format}.json")

    rows = [run_variant(name, args, passages, llm, embedder, gecko_format) for name in args.variants]
    reports = base + [row["report"] for row in rows]
    print("\n## Retrieval quality\n\n" + markdown_table(reports))
    print("\n## Ablations (nDCG@10, Gecko input format)\n\n" + ablation_table(base[1], rows))

    plot_reports(reports, args.out / "quality.png", title=f"Distilled vs base: {args.beir.name}")
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "passages": len(passages),
        "variants": [{**row, "report": row["report"].model_dump(mode="json")} for row in rows],
        "base": [report.model_dump(mode="json") for report in base],
    }
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {args.out / 'quality.json'} and {args.out / 'quality.png'}")


if __name__ == "__main__":
    main()
