"""Subcommands ``train``, ``eval`` and ``plot``, registered by :mod:`gecko_distill.cli`.

Library errors (:class:`~gecko_distill.errors.GeckoDistillError`) propagate to ``cli.main``,
which prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ._command import Command, add_commands
from .mteb import MTEB_TASKS_HELP, print_mteb_scores
from .options import EVAL_OPTIONS, add_option, train_config, training_arguments

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DEFAULT_MODEL = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval`` and ``plot`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["train", "runs/synth", "--out", "runs/model", "--input-format", "e5", "--epochs", "2"])
        >>> train_config(args).query_format, train_config(args).epochs, args.func.__name__
        ('e5', 2.0, '_run_train')
    """
    add_commands(subparsers, *_COMMANDS)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fret_dir", help="FRet folder (fret.jsonl + manifest.json), from build-fret or synth")
    p.add_argument("--out", required=True, help="output model folder")
    add_option(
        p,
        "--eval",
        metavar="BEIR_DIR",
        deprecated=["--validate-on"],
        default=None,
        help="BEIR folder to validate on during training (every --eval-steps)",
        shown_default="none: no validation",
    )
    add_option(p, "--overwrite", flag=True, in_file=False, help="replace a non-empty --out folder")
    training_arguments(p)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model folder, hub id, or 'default' (all-MiniLM-L6-v2)")
    p.add_argument(
        "beir_dir", nargs="?", default=None, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (or --mteb)"
    )
    add_option(
        p,
        "--mteb",
        metavar="TASK",
        nargs="+",
        default=None,
        help=f"{MTEB_TASKS_HELP}; --input-format, --task, --split, --dims and --label apply to BEIR_DIR only",
        shown_default="none",
    )
    add_option(
        p,
        "--mteb-out",
        metavar="DIR",
        default=None,
        in_file=False,
        help="folder for mteb's result files; a rerun reuses the tasks finished there",
        shown_default="nothing written",
    )
    add_option(
        p,
        "--dims",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="dims to score",
        shown_default="the full dimension, 256, 128, 64",
    )
    add_option(p, "--label", default=None, help="model name in the report", shown_default="the folder's name")
    add_option(
        p,
        "--json",
        metavar="FILE",
        deprecated=["--out"],
        default=None,
        in_file=False,
        help="write the report as JSON to FILE (for plot)",
        shown_default="not written",
    )
    add_option(
        p,
        "--png",
        metavar="FILE",
        deprecated=["--plot"],
        default=None,
        in_file=False,
        help="write a PNG of quality vs dim to FILE",
        shown_default="not written",
    )
    EVAL_OPTIONS.add_to(p)


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", help="report JSON files written by eval --json")
    add_option(p, "--png", metavar="FILE", deprecated=["--out"], required=True, in_file=False, help="PNG file to write")


def _run_train(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import load_beir
    from ..embedder.train import train

    config = train_config(args)
    if args.eval:
        load_beir(args.eval)  # a broken folder fails before training; train() validates in the trained format
    path = train(
        args.fret_dir,
        base_model=args.base_model,
        output_dir=args.out,
        config=config,
        evaluator=args.eval,
        overwrite=args.overwrite,
    )
    print(f"saved the trained model to {path}")
    print(self_check_line(path))
    return 0


def self_check_line(model_dir: str | Path) -> str:
    """The self-check's verdict on a trained model folder, loud when it found no gain."""
    from ..embedder.encoding import PROVENANCE_FILE
    from ..embedder.selfcheck import SelfCheckReport

    provenance = json.loads((Path(model_dir) / PROVENANCE_FILE).read_text(encoding="utf-8"))
    check = SelfCheckReport.model_validate(provenance["self_check"])
    if check.status == "no_gain":
        saved = "the BASE model, unchanged" if check.saved == "base" else "the best variant anyway"
        return f"WARNING: distillation did not beat the base model; saved {saved}. {check.summary()}"
    return check.summary()


def _run_eval(args: argparse.Namespace) -> int:
    from ..errors import InputError

    config = EVAL_OPTIONS.build(args)
    model = None if args.model == _DEFAULT_MODEL else args.model
    if args.beir_dir is None:
        if not args.mteb:
            raise InputError("eval: give a BEIR folder (BEIR_DIR), or MTEB tasks with --mteb TASK [TASK ...]")
        given = [name for name, value in (("--json", args.json), ("--png", args.png)) if value]
        if given:
            raise InputError(f"eval: {' and '.join(given)} write the BEIR_DIR report; give a BEIR folder for them")
    if args.mteb and config.input_format is not None:
        logger.warning(
            "--input-format %s applies to BEIR_DIR only: MTEB tasks run in the model's own format", config.input_format
        )
    if args.beir_dir is not None:
        _evaluate_beir(args, model, config)
    if args.mteb:
        print_mteb_scores(model, args.mteb, output_folder=args.mteb_out, batch_size=config.batch_size)
    return 0


def _evaluate_beir(args: argparse.Namespace, model: str | None, config) -> None:
    """Evaluate ``model`` on ``args.beir_dir``, print the table, and add the results to the
    model's card when it was trained here."""
    from ..embedder.evaluate import evaluate, markdown_table, plot_reports
    from ..embedder.model_card import record_evaluation
    from ..errors import InputError

    report = evaluate(model, args.beir_dir, dims=args.dims, config=config, label=args.label)
    print(markdown_table([report]))
    if model is not None:
        try:
            card = record_evaluation(model, report)
        except InputError as exc:  # the scores are printed; a card that cannot be written does not undo them
            logger.warning("the results were not added to the model card: %s", exc)
        else:
            if card is not None:
                print(f"added the results to the model card {card}")
    if args.json:
        print(f"wrote {report.save(args.json)}")
    if args.png:
        print(f"wrote {plot_reports([report], args.png)}")


def _run_plot(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import plot_reports

    reports = [_load_report(path) for path in args.reports]
    print(f"wrote {plot_reports(reports, args.png)}")
    return 0


def _load_report(path: str):
    from pydantic import ValidationError

    from ..embedder.evaluate import RetrievalReport
    from ..errors import InputError

    try:
        return RetrievalReport.load(path)
    except FileNotFoundError:
        raise InputError(f"{path}: report not found") from None
    except ValidationError as exc:
        raise InputError(f"{path}: not a report written by 'gecko-distill eval --json' ({exc.error_count()} errors)") from None


_COMMANDS = (
    Command(
        "train",
        "fine-tune an embedder on an FRet folder (Matryoshka + in-batch/hard/same-tower negatives)",
        _train_arguments,
        _run_train,
        "Train a sentence-transformers embedder on FRET_DIR (written by build-fret or synth) and save it to --out.",
    ),
    Command(
        "eval",
        "nDCG@10, MRR@10, Recall@10/100 of a model on a BEIR folder, at each Matryoshka dim; or MTEB tasks",
        _eval_arguments,
        _run_eval,
        "Evaluate MODEL (a model folder, a hub id, or 'default' for all-MiniLM-L6-v2) on BEIR_DIR, at each Matryoshka "
        "dimension; a model trained here gets the results in its card (README.md) and gecko_distill.json. With --mteb, "
        "also (or instead) run MTEB tasks through the mteb package (pip install 'gecko-distill[mteb]').",
    ),
    Command("plot", "plot quality vs dim of several eval reports on the same axes", _plot_arguments, _run_plot),
)
