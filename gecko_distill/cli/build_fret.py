"""Subcommand ``build-fret``: generate, retrieve and relabel, from a corpus to an FRet folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .options import executor_from_args, fret_arguments, fret_config

if TYPE_CHECKING:
    from ..fret.pipeline import FRetDataset

__all__ = ["build_fret_from_args", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``build-fret`` to the ``gecko-distill`` parser."""
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


def _run_build_fret(args: argparse.Namespace) -> int:
    fret = build_fret_from_args(args, args.out)
    print(f"wrote {len(fret)} FRet examples to {args.out}/fret.jsonl")
    return 0


def build_fret_from_args(args: argparse.Namespace, out: str | Path) -> FRetDataset:
    """Run ``build_fret`` with the options of :func:`fret_arguments` and print its summary.

    The options are checked first, then the corpus is read, then the teacher is made: a bad
    option or corpus line fails before anything slow starts. The summary's corpus row counts the
    file as read (lines, and skips such as duplicate texts), not only the passages kept.
    """
    from ..corpus import load_passages
    from ..errors import InputError
    from ..fret.pipeline import build_fret
    from ..llm.registry import API_PREFIXES, DEFAULT_LLM, LazyLLM, get_llm
    from ..report import summary_table

    config = fret_config(args)  # invalid options fail before the corpus or the teacher is loaded
    local = {"dtype": args.llm_dtype} if getattr(args, "llm_dtype", None) else {}
    if local and args.llm.partition(":")[0] in API_PREFIXES:
        raise InputError(f"invalid option: --llm-dtype {args.llm_dtype}: it sets a local teacher's precision, not {args.llm}'s")
    corpus = load_passages(args.corpus, limit=args.limit)
    api = {
        "base_url": args.llm_base_url,
        "api_key_env": args.llm_api_key_env,
        "concurrency": args.llm_concurrency,
        "requests_per_minute": args.llm_rpm,
        "tokens_per_minute": args.llm_tpm,
    }
    if args.llm == DEFAULT_LLM and not any(api.values()):
        llm = LazyLLM(args.llm, **local) if local else None  # lazy: a finished run never loads the teacher
    else:
        llm = get_llm(args.llm, **api, **local)
    scorer = get_llm(args.scorer) if args.scorer else None
    previous = os.environ.get("GECKO_DISTILL_PRICES")
    if args.prices:
        os.environ["GECKO_DISTILL_PRICES"] = args.prices  # read by build_fret's cost estimate
    try:
        fret = build_fret(
            corpus.records,
            llm=llm,
            embedder=args.embedder,
            config=config,
            output_dir=out,
            overwrite=args.overwrite,
            scorer=scorer,
            executor=executor_from_args(args),
            batch=args.llm_batch,
        )
    finally:  # the option applies to this run only, not to later calls in the same process
        if previous is None:
            os.environ.pop("GECKO_DISTILL_PRICES", None)
        else:
            os.environ["GECKO_DISTILL_PRICES"] = previous
    print(summary_table({**fret.stats, "corpus": corpus.stats}))
    return fret
