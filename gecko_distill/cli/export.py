"""Subcommand ``export``: an FRet folder as a Hugging Face dataset folder with a dataset card."""

from __future__ import annotations

import argparse

from ..embedder.formatting import QUERY_FORMATS

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``gecko-distill`` parser."""
    p = subparsers.add_parser(
        "export",
        help="write an FRet folder as a Hugging Face dataset (save_to_disk) with a dataset card",
        description="Write FRet as a dataset folder: formatted anchor/positive/negative columns that "
        "SentenceTransformerTrainer trains on directly (datasets.load_from_disk(DIR)), every raw and provenance "
        "column in DIR/full, the run's manifest, and a README.md dataset card. `gecko-distill push DIR REPO_ID` "
        "uploads it to the Hub.",
    )
    p.add_argument("fret_dir", metavar="FRET_DIR", help="FRet folder written by build-fret or run (or its fret.jsonl)")
    p.add_argument("--to", required=True, metavar="DATASET_DIR", help="dataset folder to write")
    p.add_argument(
        "--input-format",
        choices=QUERY_FORMATS,
        default=None,
        help="input format of the anchor/positive/negative columns (default: the folder's manifest, else plain, "
        "as train does with the default base model)",
    )
    p.add_argument(
        "--license",
        default=None,
        help="licence of the source corpus, e.g. cc-by-sa-4.0 (default: 'unknown, see the source corpus')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in DATASET_DIR (default: refuse)")
    p.set_defaults(func=_run_export)


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
