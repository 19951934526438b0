"""Command line: ``gecko-distill build-fret CORPUS.jsonl --out DIR`` and friends (``train``, ``eval``,
``plot``, ``run``, ``synth``).

Library errors (bad input, stale output folders, missing optional dependencies) are printed as
one line naming the problem, with exit status 2; an interrupted run says how to resume it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import GeckoDistillError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-distill", description="Distil an LLM into a small text embedder (Gecko).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v for info logs, -vv for debug")
    subparsers = parser.add_subparsers(dest="command", required=True)
    from . import (  # their heavy imports happen inside the commands
        build_fret,
        run,
        synth,
        train,
    )

    for module in (build_fret, train, run, synth):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gecko-distill`` command."""
    args = _parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except GeckoDistillError as exc:
        print(f"gecko-distill: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gecko-distill: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
