"""Subcommand ``mteb``: MTEB tasks (by name, or local BEIR folders) on a model, with its prompts.

``gecko-distill eval MODEL --mteb TASK...`` runs the same code (:func:`print_mteb_scores`);
this command stays as its short form.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._command import Command, add_commands
from .options import add_option

__all__ = ["register", "print_mteb_scores", "MTEB_TASKS_HELP"]

#: What a task argument may be (``mteb``'s TASK, ``eval --mteb``).
MTEB_TASKS_HELP = (
    "MTEB task names (e.g. NFCorpus STSBenchmark; their data is downloaded) or local BEIR folders (offline), run with "
    "the model's prompts per task type"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mteb`` to the ``gecko-distill`` parser."""
    add_commands(subparsers, MTEB)


def _mteb_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model folder, or a Hugging Face hub id")
    p.add_argument("tasks", metavar="TASK", nargs="+", help=MTEB_TASKS_HELP)
    add_option(
        p,
        "--out",
        default=None,
        metavar="DIR",
        in_file=False,
        help="folder for mteb's result files; a rerun reuses the tasks finished there",
        shown_default="nothing written",
    )
    add_option(p, "--batch-size", type=int, default=32, metavar="N", help="encoding batch size")


def _run_mteb(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, not {args.batch_size}")
    print_mteb_scores(args.model, args.tasks, output_folder=args.out, batch_size=args.batch_size)
    return 0


def print_mteb_scores(model: str | None, tasks: Sequence[str], *, output_folder: str | None, batch_size: int) -> None:
    """Run MTEB ``tasks`` on ``model`` (``None``: the offline default) and print one line per
    task with its main score, then where the results were written (if anywhere)."""
    from ..embedder.mteb_eval import main_scores, run_mteb

    scores = main_scores(run_mteb(model, tasks, output_folder=output_folder, batch_size=batch_size))
    width = max(len(name) for name in [*scores, "task"])
    print(f"{'task':<{width}}  main score")
    for name, score in scores.items():
        print(f"{name:<{width}}  {score:.4f}")
    if output_folder:
        print(f"results in {output_folder}")


MTEB = Command(
    "mteb",
    "run MTEB tasks (hub task names or local BEIR folders) on a model, with its prompts per task type",
    _mteb_arguments,
    _run_mteb,
    "Run MTEB tasks through the mteb package (pip install 'gecko-distill[mteb]'); the same as `gecko-distill eval "
    "MODEL --mteb TASK...`. A model trained here is prompted in its own input format: its query and document prompts "
    "for retrieval, the query format with a task description for symmetric task types. Hub tasks download their "
    "data; a BEIR folder runs offline.",
)
