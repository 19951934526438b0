"""Subcommand ``pretrain``: pre-finetune an embedder on a corpus's (title, passage) pairs.

``gecko-distill pretrain CORPUS --out MODEL_DIR`` needs no LLM; ``train --base-model MODEL_DIR``
then starts from the result. A rerun with the same inputs reuses the saved model.
"""

from __future__ import annotations

import argparse

from ..embedder.formatting import QUERY_FORMATS
from .options import _option_names, config_or_input_error

__all__ = ["PRETRAIN_OPTIONS", "register", "pretrain_config", "pretrained_line"]

#: The command-line option of each ``PretrainConfig`` field.
PRETRAIN_OPTIONS = _option_names(
    "epochs", "batch_size", "max_seq_length", "min_pairs", "seed", "query_format", learning_rate="--lr"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pretrain`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["pretrain", "corpus.jsonl", "--out", "runs/pre", "--epochs", "2"])
        >>> args.epochs, args.min_pairs, args.func.__name__
        (2.0, 64, '_run_pretrain')
    """
    p = subparsers.add_parser(
        "pretrain",
        help="pre-finetune an embedder on the corpus's (title, passage) pairs, no LLM needed",
        description="Pre-finetune (Gecko) an embedder on (title, passage) pairs of CORPUS, and optional QA pairs, "
        "with in-batch negatives; then train on FRet with --base-model MODEL_DIR. Rerunning the same command reuses "
        "the saved model; other inputs or settings are refused unless --overwrite.",
    )
    p.add_argument("corpus", help="BEIR corpus.jsonl (or the folder holding it); passages with a title give the pairs")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--qa-pairs", metavar="FILE", default=None,
                   help='JSONL of extra pairs: {"task": ..., "anchor": ..., "positive": ...} (optional "negative")')
    p.add_argument("--base-model", default=None, help="model folder to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate")
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--min-pairs", type=int, default=64, help="skip the stage with fewer title-passage pairs")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--query-format", choices=QUERY_FORMATS, default=None,
                   help="input format (default: the base model's own, plain for a model not trained here)")
    p.add_argument("--overwrite", action="store_true", help="replace a --out folder that holds something else")
    p.set_defaults(func=_run_pretrain)


def pretrain_config(args: argparse.Namespace):
    """The :class:`~gecko_distill.embedder.pretrain.PretrainConfig` of the options; an invalid one is
    an ``InputError`` naming the option."""
    from ..embedder.pretrain import PretrainConfig

    return config_or_input_error(
        PretrainConfig,
        PRETRAIN_OPTIONS,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_seq_length=args.max_seq_length,
        min_pairs=args.min_pairs,
        seed=args.seed,
        query_format=args.query_format,
    )


def _run_pretrain(args: argparse.Namespace) -> int:
    from ..corpus import load_passages
    from ..embedder.pretrain import pretrain, skip_reason, title_pairs

    config = pretrain_config(args)  # invalid options fail before anything is read
    passages = load_passages(args.corpus).records
    path = pretrain(
        passages, base_model=args.base_model, output_dir=args.out, config=config, qa_pairs=args.qa_pairs,
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
