"""Subcommands ``train``, ``eval`` and ``plot``, registered by :mod:`gecko_distill.cli`.

Library errors (:class:`~gecko_distill.errors.GeckoDistillError`) propagate to ``cli.main``,
which prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

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
    for name, add_arguments, run, summary, description in _COMMANDS:
        p = subparsers.add_parser(name, help=summary, description=description)
        add_arguments(p)
        p.set_defaults(func=run)


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
    p.add_argument("beir_dir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
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
    from ..embedder.evaluate import evaluate, markdown_table, plot_reports

    config = EVAL_OPTIONS.build(args)
    model = None if args.model == _DEFAULT_MODEL else args.model
    report = evaluate(model, args.beir_dir, dims=args.dims, config=config, label=args.label)
    print(markdown_table([report]))
    if args.json:
        print(f"wrote {report.save(args.json)}")
    if args.png:
        print(f"wrote {plot_reports([report], args.png)}")
    return 0


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


#: name, arguments, run, help, description of each subcommand.
_COMMANDS = (
    (
        "train",
        _train_arguments,
        _run_train,
        "fine-tune an embedder on an FRet folder (Matryoshka + in-batch/hard/same-tower negatives)",
        "Train a sentence-transformers embedder on FRET_DIR (written by build-fret or synth) and save it to --out.",
    ),
    (
        "eval",
        _eval_arguments,
        _run_eval,
        "nDCG@10, MRR@10, Recall@10/100 of a model on a BEIR folder, at each Matryoshka dim",
        "Evaluate MODEL (a model folder, a hub id, or 'default' for all-MiniLM-L6-v2) on BEIR_DIR.",
    ),
    ("plot", _plot_arguments, _run_plot, "plot quality vs dim of several eval reports on the same axes", None),
)
