"""Subcommand ``pretrain``: pre-finetune an embedder on a corpus's (title, passage) pairs.

``gecko-distill pretrain CORPUS --out MODEL_DIR`` needs no LLM; ``train --base-model MODEL_DIR``
then starts from the result. A rerun with the same inputs reuses the saved model.
"""

from __future__ import annotations

import argparse

from ._command import Command, add_commands
from .options import PRETRAIN_OPTIONS, add_option, base_model_option

__all__ = ["register", "pretrain_config", "pretrained_line"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pretrain`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["pretrain", "corpus.jsonl", "--out", "runs/pre", "--epochs", "2"])
        >>> config = pretrain_config(args)
        >>> config.epochs, config.min_pairs, args.func.__name__
        (2.0, 64, '_run_pretrain')
    """
    add_commands(subparsers, PRETRAIN)


def _pretrain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", help="BEIR corpus.jsonl (or the folder holding it); passages with a title give the pairs")
    p.add_argument("--out", required=True, help="output model folder")
    add_option(
        p,
        "--qa-pairs",
        metavar="FILE",
        default=None,
        shown_default="none",
        help='JSONL of extra pairs: {"task": ..., "anchor": ..., "positive": ...} (optional "negative")',
    )
    base_model_option(p)
    add_option(p, "--overwrite", flag=True, in_file=False, help="replace a --out folder that holds something else")
    PRETRAIN_OPTIONS.add_to(p)


def pretrain_config(args: argparse.Namespace):
    """The :class:`~gecko_distill.embedder.pretrain.PretrainConfig` of the options; an invalid one is
    an ``InputError`` naming the option."""
    return PRETRAIN_OPTIONS.build(args)


def _run_pretrain(args: argparse.Namespace) -> int:
    from ..corpus import load_passages
    from ..embedder.pretrain import pretrain, skip_reason, title_pairs

    config = pretrain_config(args)  # invalid options fail before anything is read
    passages = load_passages(args.corpus).records
    path = pretrain(
        passages,
        base_model=args.base_model,
        output_dir=args.out,
        config=config,
        qa_pairs=args.qa_pairs,
        overwrite=args.overwrite,
    )
    if path is None:
        reason = skip_reason(title_pairs(passages)[1], config)
        print(f"pretrain: skipped: {reason} (see --min-pairs, --batch-size); nothing written to {args.out}")
    else:
        print(pretrained_line(path))
    return 0


def pretrained_line(folder) -> str:
    """One line on what a pre-finetuned folder was trained on."""
    from ..embedder.pretrain import pretrain_record

    record = pretrain_record(folder) or {}
    pairs = record.get("pairs", {})
    qa = f" and {pairs['qa']} QA pairs" if pairs.get("qa") else ""
    return f"pretrained: {folder} ({pairs.get('title', 0)} title-passage pairs{qa})"


PRETRAIN = Command(
    "pretrain",
    "pre-finetune an embedder on the corpus's (title, passage) pairs, no LLM needed",
    _pretrain_arguments,
    _run_pretrain,
    "Pre-finetune (Gecko) an embedder on (title, passage) pairs of CORPUS, and optional QA pairs, with in-batch "
    "negatives; then train on FRet with --base-model MODEL_DIR. Rerunning the same command reuses the saved model; "
    "other inputs or settings are refused unless --overwrite.",
)
