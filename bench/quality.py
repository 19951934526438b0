"""Quality benchmark: distil the offline teacher into all-MiniLM-L6-v2 on a BEIR corpus, and ablate.

FRet is built from the passages of ``<beir>/corpus.jsonl`` only (never its queries or qrels).
Every variant trains MiniLM from scratch on its own FRet set, once per training seed
(``--train-seeds``), and is evaluated on the BEIR test queries in the input format its
``gecko_distill.json`` records (the one the self-check chose), at every Matryoshka dimension;
the base model is evaluated in plain text, its own format. Variants (``--variants``), each the
defaults with one lever turned off or changed:

* ``default``:      the library's defaults: round 1, native-format mining, teacher check with
                    ``rank_by="auto"``, the false-negative guard, the self-check
* ``no-round1``:    no round-1 miner (mine with the base model)
* ``gecko-mining``: mine in Gecko's ``task: … | query: …`` format instead of the miner's own
* ``rrf``:          always fuse QL and RC (the paper), no teacher check
* ``ql``:           positives by query likelihood only
* ``seed``:         the seed passage stays the positive (no relabelling)
* ``no-guard``:     no false-negative guard (no margin, no negative cap)
* ``zero-shot``:    zero-shot scoring prompts (no demonstrations from the run's data)
* ``no-selfcheck``: no held-out slice: the fine-tuned model is saved as it is, in the Gecko format

One :class:`~gecko_distill.llm.CachedLLM` is shared, so the variants reuse the LLM's answers
(generation, and the fused QL/RC scores) and a rerun repeats no LLM call; ``build_fret``
resumes its stage folders.

Usage (the full run is long on CPU; start small)::

    python bench/quality.py --passages 200 --top-n 10 --out bench/results/quality
    python bench/quality.py --llm fake --passages 12 --top-n 4 --max-steps 2 --batch-size 4 \\
        --beir /tmp/mini_beir --out /tmp/quality-smoke          # plumbing check in seconds

Writes ``quality.json`` (arguments, per-variant FRet stats, timings, all reports), one report
JSON per model, and ``quality.png`` (nDCG@10 etc. against dimension); prints markdown tables,
with the mean and the spread (max - min) over the training seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

from gecko_distill import FRetConfig, RelabelConfig, build_fret, load_passages
from gecko_distill.embedder.encoding import load_model
from gecko_distill.embedder.evaluate import EvalConfig, RetrievalReport, evaluate, markdown_table, plot_reports
from gecko_distill.embedder.selfcheck import SelfCheckConfig
from gecko_distill.embedder.train import TrainConfig, train
from gecko_distill.llm import CachedLLM, get_llm

MANPAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "manpages"  # ../shared beside the checkout
MANPAGES_TASK = "Given a short description of what a command does, retrieve the manual page of that command"

#: name: (FRetConfig changes by stage, TrainConfig changes)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "no-round1": ({"round1": {"enabled": False}}, {}),
    "gecko-mining": ({"retrieve": {"input_format": "gecko"}}, {}),
    "rrf": ({"relabel": {"rank_by": "rrf"}}, {}),
    "ql": ({"relabel": {"rank_by": "ql"}}, {}),
    "seed": ({"relabel": {"rank_by": "seed"}}, {}),
    "no-guard": ({"relabel": {"negative_margin": 0.0, "max_negative_uses": None}}, {}),
    "zero-shot": ({"relabel": {"few_shot": 0}}, {}),
    "no-selfcheck": ({}, {"self_check": SelfCheckConfig(holdout_fraction=0.0), "query_format": "gecko"}),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--beir", type=Path, default=MANPAGES, help="BEIR folder (FRet uses only its corpus.jsonl)")
    p.add_argument("--out", type=Path, default=Path("bench/results/quality"))
    p.add_argument("--passages", type=int, default=200, help="seed passages sampled from the corpus (0: all)")
    p.add_argument("--top-n", type=int, default=10, help="retrieved candidates per query (paper: 20)")
    p.add_argument("--llm", default="gemma3-270m", help='teacher for get_llm ("fake" for a plumbing check)')
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["default", "no-round1", "rrf", "seed"])
    p.add_argument("--train-seeds", type=int, nargs="+", default=[42, 43], help="a model is trained per seed")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--dims", type=int, nargs="+", default=None, help="dims to evaluate (default: 384 256 128 64)")
    p.add_argument("--task", default=MANPAGES_TASK, help="task description of Gecko-format test queries")
    p.add_argument("--seed", type=int, default=0, help="seeds the passage sample")
    p.add_argument(
        "--sample",
        choices=["random", "first"],
        default="random",
        help="which passages: a seeded random sample, or the first N (as build-fret --limit N)",
    )
    p.add_argument(
        "--relabel-batch",
        type=int,
        default=RelabelConfig().batch_size,
        help="queries relabelled per backend call (bigger: more shared passages read once)",
    )
    return p.parse_args()


def sample_passages(beir: Path, n: int, seed: int, how: str = "random") -> list:
    if how == "first" and n > 0:
        return load_passages(beir / "corpus.jsonl", limit=n).records
    passages = load_passages(beir / "corpus.jsonl").records
    if 0 < n < len(passages):
        passages = sorted(random.Random(seed).sample(passages, n), key=lambda p: p.id)
    return passages


def run_variant(name: str, args: argparse.Namespace, passages: list, llm: CachedLLM, embedder, eval_config: EvalConfig) -> dict:
    fret_dir = args.out / "fret" / name
    fret_changes, train_changes = VARIANTS[name]
    stages = {"retrieve": {"top_n": args.top_n}, "relabel": {"batch_size": args.relabel_batch}}
    for stage, changes in fret_changes.items():
        stages[stage] = {**stages.get(stage, {}), **changes}
    config = FRetConfig.model_validate(stages)
    started = time.perf_counter()
    fret = build_fret(passages, llm=llm, embedder=embedder, config=config, output_dir=fret_dir)
    built = time.perf_counter()
    reports, checks, train_seconds = [], [], []
    for seed in args.train_seeds:
        model_dir = args.out / "models" / f"{name}-seed{seed}"
        train_config = TrainConfig(
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            max_seq_length=args.max_seq_length,
            seed=seed,
            **train_changes,
        )
        trained_at = time.perf_counter()
        train(fret_dir, output_dir=model_dir, config=train_config, overwrite=True)
        train_seconds.append(round(time.perf_counter() - trained_at, 1))
        checks.append(json.loads((model_dir / "gecko_distill.json").read_text())["self_check"])
        report = evaluate(model_dir, args.beir, dims=args.dims, config=eval_config, label=f"distilled: {name} (seed {seed})")
        report.save(args.out / "reports" / f"{name}-seed{seed}.json")
        reports.append(report)
    return {
        "variant": name,
        "changes": {"fret": fret_changes, "train": {k: str(v) for k, v in train_changes.items()}},
        "examples": len(fret),
        "positive_not_seed": fret.stats["relabel"].get("positive_not_seed"),
        "rank_by": fret.stats["relabel"].get("rank_by"),
        "teacher_check": fret.stats["relabel"].get("teacher_check"),
        "round1": fret.stats.get("round1"),
        "seed_in_top_n": fret.stats["retrieve"].get("seed_in_top_n"),
        "fret_llm_calls": fret.stats["generate"].get("llm_calls", 0) + fret.stats["relabel"].get("llm_calls", 0),
        "self_checks": [{"status": c["status"], "saved": c["saved"], "chosen": c.get("chosen")} for c in checks],
        "seconds": {"build_fret": round(built - started, 1), "train": train_seconds},
        "reports": reports,
    }


def ablation_table(base: RetrievalReport, rows: list[dict]) -> str:
    """nDCG@10 per dimension: the mean over training seeds, with the spread (max - min)."""
    dims = [s.dim for s in base.scores]
    head = (
        "| model | FRet examples | ranked by | positive != seed | seed in top N | self-check (saved) | "
        + " | ".join(f"nDCG@10 @{d}" for d in dims)
        + " |"
    )
    lines = [head, "|" + "---|" * 6 + "---:|" * len(dims)]
    lines.append(f"| {base.model} (plain) | - | - | - | - | - | " + " | ".join(f"{s.ndcg_at_10:.3f}" for s in base.scores) + " |")
    for row in rows:
        share = row["positive_not_seed"]
        share = f"{100 * share:.0f}%" if isinstance(share, (int, float)) else "-"
        recall = row["seed_in_top_n"]
        recall = f"{100 * recall:.0f}%" if isinstance(recall, (int, float)) else "-"
        checks = ", ".join(f"{c['status']} ({c['saved']})" for c in row["self_checks"])
        cells = []
        for dim in dims:
            values = [r.at(dim).ndcg_at_10 for r in row["reports"]]
            spread = f" ± {(max(values) - min(values)) / 2:.3f}" if len(values) > 1 else ""
            cells.append(f"{sum(values) / len(values):.3f}{spread}")
        lines.append(
            f"| {row['variant']} | {row['examples']} | {row['rank_by']} | {share} | {recall} | {checks} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    passages = sample_passages(args.beir, args.passages, args.seed, args.sample)
    print(f"{len(passages)} seed passages from {args.beir / 'corpus.jsonl'}; variants {args.variants}")

    embedder = load_model()
    llm = CachedLLM(get_llm(args.llm), args.out / "llm_cache.sqlite")
    own_format = EvalConfig(task=args.task)  # each model in its own format: plain for the base
    base = evaluate(embedder, args.beir, dims=args.dims, config=own_format, label="all-MiniLM-L6-v2 (base)")
    base.save(args.out / "reports" / "base-plain.json")

    rows = [run_variant(name, args, passages, llm, embedder, own_format) for name in args.variants]
    reports = [base] + [r for row in rows for r in row["reports"]]
    print("\n## Retrieval quality\n\n" + markdown_table(reports))
    print(
        "\n## Ablations (nDCG@10, each model in its own input format; mean ± half the range over seeds)\n\n"
        + ablation_table(base, rows)
    )

    plot_reports(reports, args.out / "quality.png", title=f"Distilled vs base: {args.beir.name}")
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "passages": len(passages),
        "variants": [{**row, "reports": [r.model_dump(mode="json") for r in row["reports"]]} for row in rows],
        "base": base.model_dump(mode="json"),
    }
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {args.out / 'quality.json'} and {args.out / 'quality.png'}")


if __name__ == "__main__":
    main()
