"""Subcommand ``run``: build FRet from a corpus, train on it, and evaluate base against distilled.

``gecko-distill run CORPUS --out DIR --eval BEIR_DIR`` chains the other commands:

* ``DIR/fret``: ``build-fret`` (resumed if interrupted; no LLM call is repeated);
* ``DIR/model``: ``train`` (skipped when the folder already holds a model trained from this
  FRet folder with the same settings; a model trained otherwise is replaced only with
  ``--overwrite``);
* ``DIR/reports/{base,distilled}.json`` and ``DIR/quality.png``: ``eval`` of the base model
  (plain input, its native format) and of the distilled model (the format it was trained in),
  at each Matryoshka dimension, on the same axes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .build_fret import build_fret_from_args
from .options import (
    config_or_input_error,
    fret_arguments,
    fret_config,
    train_config,
    training_arguments,
)
from .train import self_check_line

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["run", "corpus.jsonl", "--out", "runs/x", "--eval", "beir", "--epochs", "3"])
        >>> args.eval, args.epochs, args.top_n
        ('beir', 3.0, 20)
    """
    p = subparsers.add_parser(
        "run",
        help="build FRet from a corpus, train on it, then evaluate base vs distilled on a BEIR folder",
        description="The whole loop: build-fret into OUT/fret, train into OUT/model, and (with --eval) evaluate the "
        "base and the distilled model into OUT/reports and OUT/quality.png. Rerunning the same command resumes: "
        "no LLM call is repeated, and a model already trained with the same data and settings is reused.",
    )
    p.add_argument("corpus", help="BEIR corpus.jsonl (or the folder holding it): the passages FRet is built from")
    p.add_argument("--out", required=True, help="output folder: fret/, model/, reports/, quality.png")
    evaluation = p.add_argument_group("evaluation")
    evaluation.add_argument("--eval", metavar="BEIR_DIR", default=None,
                            help="BEIR folder to evaluate on (its queries are never trained on)")
    evaluation.add_argument("--task", default=None, help="task description of the evaluation queries (distilled model)")
    evaluation.add_argument("--split", default="test", help="qrels split of --eval")
    fret_arguments(p.add_argument_group("FRet (as in build-fret)"))
    training_arguments(p.add_argument_group("training (as in train)"))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import (
        DEFAULT_TASK,
        EvalConfig,
        evaluate,
        load_beir,
        markdown_table,
        plot_reports,
    )
    from ..embedder.train import PROVENANCE_FILE, train, trained_from

    out = Path(args.out)
    fret_dir, model_dir = out / "fret", out / "model"
    fret_config(args)  # invalid options fail before anything is loaded
    config = train_config(args)
    eval_config = config_or_input_error(EvalConfig, task=args.task or DEFAULT_TASK, split=args.split)
    if args.eval:
        load_beir(args.eval, eval_config.split)  # a broken BEIR folder fails before any LLM call

    fret = build_fret_from_args(args, fret_dir)
    print(f"FRet: {len(fret)} examples in {fret_dir}")
    if trained_from(model_dir, fret_dir, config=config, base_model=args.base_model):
        print(f"model: {model_dir} was already trained from this FRet folder with these settings; reusing it")
    else:
        train(fret_dir, base_model=args.base_model, output_dir=model_dir, config=config, overwrite=args.overwrite)
        print(f"model: saved to {model_dir}")
    print(self_check_line(model_dir))
    if not args.eval:
        return 0

    provenance = json.loads((model_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    dims = provenance["matryoshka_dims"]
    runs = (
        ("base", args.base_model, "plain"),
        ("distilled", model_dir, provenance["query_format"]),
    )
    reports = []
    for label, model, input_format in runs:
        report = evaluate(model, args.eval, dims=dims, config=eval_config.model_copy(update={"input_format": input_format}), label=label)
        report.save(out / "reports" / f"{label}.json")
        reports.append(report)
    print(markdown_table(reports))
    print(f"wrote {out / 'reports'} and {plot_reports(reports, out / 'quality.png')}")
    return 0
