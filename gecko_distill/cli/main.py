"""Command line: ``gecko-distill build-fret CORPUS.jsonl --out DIR`` and friends (``train``, ``eval``,
``plot``, ``run``, ``synth``).

Library errors (bad input, stale output folders, missing optional dependencies) are printed as
one line naming the problem, with exit status 2; an interrupted run says how to resume it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import GeckoDistillError

if TYPE_CHECKING:
    from ..fret.pipeline import FRetDataset

__all__ = ["main"]


def _build_fret_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build-fret",
        help="generate, retrieve and relabel: build an FRet dataset from a corpus",
        description="Build an FRet dataset (task, query, positive, hard negative) from a BEIR corpus.jsonl. "
        "Rerunning the same command resumes an interrupted run and repeats no LLM call.",
    )
    p.add_argument("corpus", help="BEIR corpus.jsonl (or the folder holding it)")
    p.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    fret_arguments(p)
    p.set_defaults(func=_run_build_fret)


def fret_arguments(p: argparse.ArgumentParser) -> None:
    """The FRet options of ``build-fret`` (and ``run``): passages, teacher, retrieval, relabelling."""
    p.add_argument("--limit", type=int, default=None, help="use only the first N passages")
    p.add_argument("--queries-per-passage", type=int, default=1, help="samples per passage (>1 samples at --temperature)")
    p.add_argument("--temperature", type=float, default=None, help="generation temperature (default 0, or 0.7 with K>1)")
    p.add_argument("--top-n", type=int, default=20, help="candidates per query (paper: 20)")
    p.add_argument("--rank-by", choices=["rrf", "ql", "rc", "seed"], default="rrf")
    p.add_argument("--scoring", choices=["fused", "separate"], default="fused")
    p.add_argument("--negative", choices=["last", "random"], default="last")
    p.add_argument(
        "--llm",
        default="gemma3-270m",
        help="teacher: gemma3-270m (default), smollm2-135m, a .gguf file or model folder, hf:<id>, "
        "gemini:<model>, openai:<model>, vllm:<model>, ollama:<model>, llamacpp:<model>",
    )
    p.add_argument("--scorer", default=None, help="a second backend for relabelling (same names as --llm)")
    p.add_argument("--llm-base-url", default=None, help="server URL of an API teacher (e.g. http://localhost:8000/v1)")
    p.add_argument("--llm-api-key-env", default=None, help="name of the environment variable holding the API key")
    p.add_argument("--llm-concurrency", type=int, default=None, help="requests in flight at once (API teachers)")
    p.add_argument("--llm-rpm", type=int, default=None, help="requests per minute limit (API teachers)")
    p.add_argument("--llm-tpm", type=int, default=None, help="tokens per minute limit (API teachers)")
    p.add_argument("--embedder", default=None, help="sentence-transformers model folder (default all-MiniLM-L6-v2)")
    p.add_argument("--overwrite", action="store_true", help="rebuild stages whose saved output has another config")
    p.add_argument(
        "--prices",
        default=None,
        help='JSON price table for the cost estimate: {"model": {"input_per_mtok": 0.3, "output_per_mtok": 2.5}}',
    )


def _fret_config(args: argparse.Namespace):
    from ..config import FRetConfig, GenerateConfig, RelabelConfig, RetrieveConfig

    temperature = args.temperature if args.temperature is not None else (0.7 if args.queries_per_passage > 1 else 0.0)
    return FRetConfig(
        generate=GenerateConfig(queries_per_passage=args.queries_per_passage, temperature=temperature),
        retrieve=RetrieveConfig(top_n=args.top_n),
        relabel=RelabelConfig(rank_by=args.rank_by, scoring=args.scoring, negative=args.negative),
    )


def _run_build_fret(args: argparse.Namespace) -> int:
    fret = build_fret_from_args(args, args.out)
    print(f"wrote {len(fret)} FRet examples to {args.out}/fret.jsonl")
    return 0


def build_fret_from_args(args: argparse.Namespace, out: str | Path) -> FRetDataset:
    """Run ``build_fret`` with the options of :func:`fret_arguments` and print its summary."""
    from ..corpus import load_passages
    from ..llm.registry import DEFAULT_LLM, get_llm
    from ..fret.pipeline import build_fret
    from ..report import summary_table

    if args.prices:
        os.environ["GECKO_DISTILL_PRICES"] = args.prices  # read by build_fret's cost estimate
    passages = load_passages(args.corpus, limit=args.limit).records
    api = {
        "base_url": args.llm_base_url,
        "api_key_env": args.llm_api_key_env,
        "concurrency": args.llm_concurrency,
        "requests_per_minute": args.llm_rpm,
        "tokens_per_minute": args.llm_tpm,
    }
    llm = None if args.llm == DEFAULT_LLM and not any(api.values()) else get_llm(args.llm, **api)
    scorer = get_llm(args.scorer) if args.scorer else None
    fret = build_fret(
        passages,
        llm=llm,
        embedder=args.embedder,
        config=_fret_config(args),
        output_dir=out,
        overwrite=args.overwrite,
        scorer=scorer,
    )
    print(summary_table(fret.stats))
    return fret


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-distill", description="Distil an LLM into a small text embedder (Gecko).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v for info logs, -vv for debug")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _build_fret_parser(subparsers)
    from . import run, synth, train  # their heavy imports happen inside the commands

    for module in (train, run, synth):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gecko-distill`` command."""
    args = _parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except GeckoDistillError as exc:
        print(f"gecko-distill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gecko-distill: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
