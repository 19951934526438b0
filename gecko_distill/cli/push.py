"""Subcommand ``push``: upload a dataset folder (``export``) or a model folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``push`` to the ``gecko-distill`` parser."""
    p = subparsers.add_parser(
        "push",
        help="upload a dataset folder (from export) or a model folder (from train/run) to the Hugging Face Hub",
        description="Create the Hub repo if needed and upload the folder in one commit, with huggingface_hub. "
        "The token comes from $HF_TOKEN or `hf auth login`; it is never written anywhere, nor taken as an option.",
    )
    p.add_argument("path", metavar="PATH", help="dataset folder (gecko-distill export) or sentence-transformers model folder")
    p.add_argument("repo_id", metavar="REPO_ID", help="'namespace/name', or 'name' for your own namespace")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--dataset",
        dest="kind",
        action="store_const",
        const="dataset",
        help="push as a dataset repo (default: told from the folder)",
    )
    kind.add_argument(
        "--model", dest="kind", action="store_const", const="model", help="push as a model repo (default: told from the folder)"
    )
    p.add_argument(
        "--private", action="store_true", help="create the repo private (default: public; an existing repo keeps its own)"
    )
    p.add_argument("--endpoint", default=None, metavar="URL", help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co)")
    p.add_argument("--message", default=None, help="commit message (default: 'Upload <kind> with gecko_distill <version>')")
    p.set_defaults(func=_run_push, kind=None)


def _run_push(args: argparse.Namespace) -> int:
    from ..hub import push_to_hub

    url = push_to_hub(
        args.path, args.repo_id, kind=args.kind, private=args.private, endpoint=args.endpoint, commit_message=args.message
    )
    print(f"pushed {args.path} to {url}")
    return 0
