"""Subcommand ``run``: build FRet from a corpus, train on it, and evaluate base against distilled.

``gecko-distill run CORPUS --out DIR --eval BEIR_DIR`` chains the other commands, with their
options (``build-fret``'s, ``train``'s, and ``eval``'s ``--task`` and ``--split``):

* ``DIR/fret``: ``build-fret`` (resumed if interrupted; no LLM call is repeated);
* ``DIR/pretrained``: ``pretrain`` on the corpus's (title, passage) pairs, when it has enough
  titled passages (``PretrainConfig.min_pairs``) and ``--no-pretrain`` is not given; reused on a
  rerun;
* ``DIR/model``: ``train``, from the pre-finetuned model when there is one, with the self-check
  still comparing against the user's base model (skipped when the folder already holds a model
  trained from this FRet folder and pre-finetuned model with the same settings; a model trained
  otherwise is replaced only with ``--overwrite``);
* ``DIR/reports/{base,distilled}.json`` and ``DIR/quality.png``: ``eval`` of the base model
  (plain input, its native format) and of the distilled model (the format it was trained in),
  at each Matryoshka dimension, on the same axes; the distilled model's card (``DIR/model/README.md``)
  and ``gecko_distill.json`` get its results at every dimension.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..embedder.pretrain import PRETRAIN_RECORD
from ._command import Command, add_commands
from .build_fret import build_fret_from_args
from .options import (
    EVAL_OPTIONS,
    add_option,
    config_or_input_error,
    fret_arguments,
    fret_config,
    train_config,
    training_arguments,
)
from .train import self_check_line

__all__ = ["register"]

#: ``run``'s evaluation settings: the task and the split (the input format is each model's own;
#: ``--batch-size`` is training's).
RUN_EVAL_OPTIONS = EVAL_OPTIONS.replace(
    short={"task": "--task", "split": "--split"}, exclude=frozenset({"input_format"}), deprecated={}
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` to the ``gecko-distill`` parser.

    Example:
        >>> from gecko_distill.cli.options import FRET_OPTIONS
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["run", "corpus.jsonl", "--out", "runs/x", "--eval", "beir", "--epochs", "3"])
        >>> args.eval, train_config(args).epochs, FRET_OPTIONS.build(args).retrieve.top_n
        ('beir', 3.0, 20)
    """
    add_commands(subparsers, RUN)


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", help="BEIR corpus.jsonl (or the folder holding it): the passages FRet is built from")
    p.add_argument("--out", required=True, help="output folder: fret/, model/, reports/, quality.png")
    add_option(
        p,
        "--eval",
        metavar="BEIR_DIR",
        default=None,
        help="BEIR folder to evaluate base and distilled on (its queries are never trained on)",
        shown_default="none: no evaluation",
    )
    add_option(
        p, "--no-pretrain", flag=True, help="do not pre-finetune on the corpus's (title, passage) pairs before training on FRet"
    )
    fret_arguments(p)
    training_arguments(p)
    RUN_EVAL_OPTIONS.add_to(p)


#: The options of ``run`` that the pre-finetuning settings come from.
_PRETRAIN_FROM = {"batch_size": "--batch-size", "seed": "--seed", "max_seq_length": "--max-seq-length"}


def _pretrain_config(args: argparse.Namespace):
    """The pre-finetuning settings of ``run``: the defaults, with the batch size, sequence length and
    seed of the training options."""
    from ..embedder.pretrain import PretrainConfig

    training = train_config(args)
    settings = {"batch_size": training.batch_size, "seed": training.seed}
    if training.max_seq_length is not None:
        settings["max_seq_length"] = training.max_seq_length
    return config_or_input_error(PretrainConfig, _PRETRAIN_FROM, **settings)


def _run(args: argparse.Namespace) -> int:
    from ..embedder.evaluate import evaluate, load_beir, markdown_table, plot_reports
    from ..embedder.model_card import record_evaluation
    from ..embedder.train import PROVENANCE_FILE, train, trained_from

    out = Path(args.out)
    fret_dir, model_dir = out / "fret", out / "model"
    fret_config(args)  # invalid options fail before anything is loaded
    config = train_config(args)
    pretrain_config = None if args.no_pretrain else _pretrain_config(args)
    eval_config = RUN_EVAL_OPTIONS.build(args)
    if args.eval:
        load_beir(args.eval, eval_config.split)  # a broken BEIR folder fails before any LLM call

    fret = build_fret_from_args(args, fret_dir)
    print(f"FRet: {len(fret)} examples in {fret_dir}")
    base_model, reference_model, record = _pretrain(args, pretrain_config, out / "pretrained")
    reuse = trained_from(model_dir, fret_dir, config=config, base_model=base_model)
    if reuse and _identity(_pretrain_copy(model_dir)) == _identity(record):
        print(f"model: {model_dir} was already trained from this FRet folder with these settings; reusing it")
    else:
        train(
            fret_dir,
            base_model=base_model,
            output_dir=model_dir,
            config=config,
            overwrite=args.overwrite,
            reference_model=reference_model,
        )
        if record is not None:  # which pre-finetuned model this one started from (a rerun checks it)
            (model_dir / PRETRAIN_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
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
        report = evaluate(
            model, args.eval, dims=dims, config=eval_config.model_copy(update={"input_format": input_format}), label=label
        )
        report.save(out / "reports" / f"{label}.json")
        reports.append(report)
    card = record_evaluation(model_dir, reports[-1])  # the distilled model's card holds its results, every dim
    print(markdown_table(reports))
    added = f"; the distilled model's results added to its card {card}" if card is not None else ""
    print(f"wrote {out / 'reports'} and {plot_reports(reports, out / 'quality.png')}{added}")
    return 0


def _pretrain(args: argparse.Namespace, config, folder: Path) -> tuple[object, object, dict | None]:
    """Pre-finetune into ``folder`` when asked and worth it; print one line saying what happened.

    Returns:
        The model to train on FRet from, the self-check's reference model (``None``: that
        model), and the pre-finetuned model's ``pretrain.json`` (``None`` when there is none).
    """
    from ..corpus import load_passages
    from ..embedder.pretrain import pretrain, pretrain_record, skip_reason, title_pairs
    from ..paths import default_embedder_path

    if config is None:
        print("pretraining: off (--no-pretrain)")
        return args.base_model, None, None
    passages = load_passages(args.corpus, limit=args.limit).records
    reason = skip_reason(title_pairs(passages)[1], config)
    if reason:  # a small or untitled corpus: normal, so one printed line rather than pretrain's warning
        print(f"pretraining: skipped ({reason}); training from the base model")
        return args.base_model, None, None
    before = pretrain_record(folder)
    path = pretrain(passages, base_model=args.base_model, output_dir=folder, config=config, overwrite=args.overwrite)
    assert path is not None  # the same passages and config as skip_reason's
    record = pretrain_record(path)
    reused = before is not None and before.get("identity") == record.get("identity")
    print(
        f"pretraining: on {record['pairs']['title']} (title, passage) pairs of the corpus, "
        f"{'reused from' if reused else 'saved to'} {path}"
    )
    reference = args.base_model if args.base_model is not None else default_embedder_path()
    return str(path), reference, record


def _identity(record: dict | None) -> str | None:
    """What a ``pretrain.json`` says the pre-finetuned model is (its inputs and settings), without
    its provenance (versions, time), which a rebuild with the same inputs changes."""
    return record.get("identity") if isinstance(record, dict) else None


def _pretrain_copy(model_dir: Path) -> dict | None:
    """The ``pretrain.json`` copied into a trained model's folder, if any."""
    try:
        return json.loads((model_dir / PRETRAIN_RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


RUN = Command(
    "run",
    "build FRet from a corpus, train on it, then evaluate base vs distilled on a BEIR folder",
    _run_arguments,
    _run,
    "The whole loop: build-fret into OUT/fret, train into OUT/model, and (with --eval) evaluate the base and the "
    "distilled model into OUT/reports and OUT/quality.png, and add the distilled model's results to its card. "
    "Rerunning the same command resumes: no LLM call is repeated, and a model already trained with the same data "
    "and settings is reused.",
)
