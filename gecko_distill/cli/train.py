"""Subcommands ``train``, ``eval`` and ``plot``, registered by :mod:`gecko_distill.cli`.

Library errors (:class:`~gecko_distill.errors.GeckoDistillError`) propagate to ``cli.main``,
which prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..embedder.formatting import QUERY_FORMATS
from .options import EVAL_OPTIONS, config_or_input_error, train_config, training_arguments

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DEFAULT_MODEL = "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``eval`` and ``plot`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["train", "runs/synth", "--out", "runs/model", "--query-format", "e5"])
        >>> args.query_format, args.func.__name__
        ('e5', '_run_train')
    """
    for name, add_arguments, run, summary, description in _COMMANDS:
        p = subparsers.add_parser(name, help=summary, description=description)
        add_arguments(p)
        p.set_defaults(func=run)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fret_dir", help="FRet folder (fret.jsonl + manifest.json), from build-fret or synth")
    p.add_argument("--out", required=True, help="output model folder")
    training_arguments(p)
    p.add_argument("--validate-on", metavar="BEIR_DIR", default=None, help="validate on this BEIR folder during training")
    p.add_argument("--eval-steps", type=int, default=None, help="validate every N steps (default: each epoch)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model folder, or 'default'")
    p.add_argument("beir_dir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="dims to score (default: full, 256, 128, 64)")
    p.add_argument("--format", dest="input_format", choices=QUERY_FORMATS, default=None,
                   help="gecko: 'task: … | query: …' / 'title: … | text: …'; e5: 'Instruct: …\\nQuery: …' / "
                   "title + text; plain: raw query, title + text (default: the model's own format, from its "
                   "gecko_distill.json; plain for a model not trained here)")
    p.add_argument("--task", default=None, help="task description of gecko- and e5-format queries")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--label", default=None, help="model name in the report (default: the folder)")
    p.add_argument("--out", default=None, help="write the report JSON here")
    p.add_argument("--plot", default=None, help="write a PNG of quality vs dim here")


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", nargs="+", help="report JSON files written by eval --out")
    p.add_argument("--out", required=True, help="PNG path")


def _run_train(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import load_beir
    from ..embedder.train import train

    config = train_config(args, eval_steps=args.eval_steps)
    if args.validate_on:
        load_beir(args.validate_on)  # a broken folder fails before training; train() validates in the trained format
    path = train(
        args.fret_dir, base_model=args.base_model, output_dir=args.out, config=config, evaluator=args.validate_on,
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
    from ..embedder.evaluate import (
        DEFAULT_TASK,
        EvalConfig,
        evaluate,
        markdown_table,
        plot_reports,
    )

    config = config_or_input_error(
        EvalConfig, EVAL_OPTIONS,
        input_format=args.input_format, task=args.task or DEFAULT_TASK, split=args.split, batch_size=args.batch_size,
    )
    model = None if args.model == _DEFAULT_MODEL else args.model
    report = evaluate(model, args.beir_dir, dims=args.dims, config=config, label=args.label)
    print(markdown_table([report]))
    if args.out:
        print(f"wrote {report.save(args.out)}")
    if args.plot:
        print(f"wrote {plot_reports([report], args.plot)}")
    return 0


def _run_plot(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import plot_reports

    reports = [_load_report(path) for path in args.reports]
    print(f"wrote {plot_reports(reports, args.out)}")
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
        raise InputError(f"{path}: not a report written by 'gecko-distill eval --out' ({exc.error_count()} errors)") from None


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
        "Evaluate MODEL (a model folder, or 'default' for all-MiniLM-L6-v2) on BEIR_DIR.",
    ),
    ("plot", _plot_arguments, _run_plot, "plot quality vs dim of several eval reports on the same axes", None),
)
