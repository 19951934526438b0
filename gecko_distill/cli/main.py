"""Command line: ``gecko-distill build-fret CORPUS.jsonl --out DIR`` and friends (``train``, ``eval``,
``plot``, ``run``, ``synth``).

Every failure is printed as one line, ``gecko-distill: error: …``, with exit status 2: library
errors (bad input, stale output folders, missing optional dependencies) as they are worded,
invalid settings by name, filesystem errors by the path, and anything unexpected by its type
and message; ``-v`` adds the traceback. An interrupted run says how to resume it (status 130).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
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
        pretrain,
        run,
        synth,
        train,
    )

    for module in (build_fret, pretrain, train, run, synth):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gecko-distill`` command."""
    args = _parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("gecko-distill: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(f"gecko-distill: error: {error_line(exc, verbose=bool(args.verbose))}", file=sys.stderr)
        return 2


def error_line(exc: Exception, *, verbose: bool = False) -> str:
    """One line describing ``exc`` for the user: what failed and, where known, which file or setting.

    Example:
        >>> error_line(FileNotFoundError(2, "No such file or directory", "runs/x/fret.jsonl"))
        'runs/x/fret.jsonl: No such file or directory'
        >>> error_line(RuntimeError("CUDA out of\\nmemory"))
        'unexpected RuntimeError: CUDA out of memory (rerun with -v for the traceback)'
    """
    from pydantic import ValidationError

    if isinstance(exc, GeckoDistillError):
        line = str(exc)
    elif isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3])
        line = f"invalid {exc.title}: {problems}"
    elif isinstance(exc, OSError) and exc.filename is not None:
        names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        line = f"{names}: {exc.strerror or type(exc).__name__}"
    else:
        line = f"unexpected {type(exc).__name__}: {exc}" if str(exc) else f"unexpected {type(exc).__name__}"
        if not verbose:
            line += " (rerun with -v for the traceback)"
    return " ".join(line.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
