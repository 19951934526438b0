"""Subcommand ``push``: upload a dataset folder (``export``) or a model folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from ._command import Command, add_commands
from .options import add_option

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``push`` to the ``gecko-distill`` parser."""
    add_commands(subparsers, PUSH)


def _push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="dataset folder (gecko-distill export) or sentence-transformers model folder")
    p.add_argument("repo_id", metavar="REPO_ID", help="'namespace/name', or 'name' for your own namespace")
    kind = p.add_mutually_exclusive_group()
    for name in ("dataset", "model"):
        kind.add_argument(
            f"--{name}",
            dest="kind",
            action="store_const",
            const=name,
            default=None,
            help=f"push as a {name} repo (default: told from the folder)",
        )
    add_option(p, "--private", flag=True, help="create the repo private", shown_default="public; an existing repo keeps its own")
    add_option(
        p, "--endpoint", default=None, metavar="URL", help="Hub URL", shown_default="$HF_ENDPOINT, else https://huggingface.co"
    )
    add_option(p, "--message", default=None, help="commit message", shown_default="'Upload <kind> with gecko_distill <version>'")


def _run_push(args: argparse.Namespace) -> int:
    from ..hub import push_to_hub

    url = push_to_hub(
        args.path, args.repo_id, kind=args.kind, private=args.private, endpoint=args.endpoint, commit_message=args.message
    )
    print(f"pushed {args.path} to {url}")
    return 0


PUSH = Command(
    "push",
    "upload a dataset folder (from export) or a model folder (from train/run) to the Hugging Face Hub",
    _push_arguments,
    _run_push,
    "Create the Hub repo if needed and upload the folder in one commit, with huggingface_hub. The token comes from "
    "$HF_TOKEN or `hf auth login`; it is never written anywhere, nor taken as an option.",
)
