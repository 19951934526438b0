"""Subcommand ``export``: an FRet folder as a Hugging Face dataset folder with a dataset card."""

from __future__ import annotations

import argparse

from ..embedder.formatting import QUERY_FORMATS
from ._command import Command, add_commands
from .options import add_option

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``gecko-distill`` parser."""
    add_commands(subparsers, EXPORT)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("fret_dir", metavar="FRET_DIR", help="FRet folder written by build-fret or run (or its fret.jsonl)")
    p.add_argument("--to", required=True, metavar="DATASET_DIR", help="dataset folder to write")
    add_option(
        p,
        "--input-format",
        choices=QUERY_FORMATS,
        default=None,
        help="input format of the anchor/positive/negative columns",
        shown_default="the folder's manifest, else plain, as train does with the default base model",
    )
    add_option(
        p,
        "--license",
        default=None,
        help="licence of the source corpus, e.g. cc-by-sa-4.0",
        shown_default="'unknown, see the source corpus'",
    )
    add_option(
        p, "--overwrite", flag=True, in_file=False, help="replace an earlier export in DATASET_DIR", shown_default="refuse"
    )


def _run_export(args: argparse.Namespace) -> int:
    from .._lazy import require
    from ..fret.export import FULL_SUBSET, export_fret

    folder = export_fret(args.fret_dir, args.to, query_format=args.input_format, license=args.license, overwrite=args.overwrite)
    rows = require("datasets", "gecko-distill[train]").load_from_disk(str(folder)).num_rows
    print(
        f"wrote {rows} examples to {folder}: datasets.load_from_disk('{folder}') trains as is; every column in "
        f"{folder / FULL_SUBSET}; dataset card {folder / 'README.md'}"
    )
    return 0


EXPORT = Command(
    "export",
    "write an FRet folder as a Hugging Face dataset (save_to_disk) with a dataset card",
    _export_arguments,
    _run_export,
    "Write FRet as a dataset folder: formatted anchor/positive/negative columns that SentenceTransformerTrainer trains "
    "on directly (datasets.load_from_disk(DIR)), every raw and provenance column in DIR/full, the run's manifest, and "
    "a README.md dataset card. `gecko-distill push DIR REPO_ID` uploads it to the Hub.",
)
