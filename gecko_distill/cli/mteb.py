"""Subcommand ``mteb``: MTEB tasks (by name, or local BEIR folders) on a model, with its prompts."""

from __future__ import annotations

import argparse

__all__ = ["add_mteb_arguments", "register", "run_mteb_from_args"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mteb`` to the ``gecko-distill`` parser."""
    p = subparsers.add_parser(
        "mteb",
        help="run MTEB tasks (hub task names or local BEIR folders) on a model, with its prompts per task type",
        description="Run MTEB tasks through the mteb package (pip install 'gecko-distill[mteb]'). A model trained "
        "here is prompted in its own input format: its query and document prompts for retrieval, the query format "
        "with a task description for symmetric task types. Hub tasks download their data; a BEIR folder runs offline.",
    )
    p.add_argument("model", metavar="MODEL", help="model folder, or a Hugging Face hub id")
    add_mteb_arguments(p)
    p.set_defaults(func=run_mteb_from_args)


def add_mteb_arguments(p: argparse.ArgumentParser) -> None:
    """The tasks, ``--out`` and ``--batch-size`` of ``mteb``."""
    p.add_argument("tasks", metavar="TASK", nargs="+", help="MTEB task names (e.g. NFCorpus STSBenchmark) or local BEIR folders")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for mteb's result files; a rerun reuses the tasks finished there (default: nothing written)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")


def run_mteb_from_args(args: argparse.Namespace) -> int:
    """Run the tasks of :func:`add_mteb_arguments` on ``args.model`` and print one line per task."""
    from ..embedder.mteb_eval import main_scores, run_mteb
    from ..errors import InputError

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {args.batch_size}")
    results = run_mteb(args.model, args.tasks, output_folder=args.out, batch_size=args.batch_size)
    scores = main_scores(results)
    width = max(len(name) for name in [*scores, "task"])
    print(f"{'task':<{width}}  main score")
    for name, score in scores.items():
        print(f"{name:<{width}}  {score:.4f}")
    if args.out:
        print(f"results in {args.out}")
    return 0
