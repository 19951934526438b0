"""Command line: ``gecko-distill build-fret CORPUS.jsonl --out DIR`` and friends (``train``, ``eval``,
``plot``, ``run``, ``pretrain``, ``synth``).

Every failure is printed as one line, ``gecko-distill: error: …``, with exit status 2: library
errors (bad input, stale output folders, missing optional dependencies) as they are worded,
invalid settings by name, filesystem errors by the path, and anything unexpected by its type
and message; ``-v`` adds the traceback. An interrupted run says how to resume it (status 130).

Options come from the config classes (:mod:`gecko_distill.cli.options`): every field is an
option and a key of ``--config FILE``, and ``--dump-config`` prints the effective settings.
Output follows :func:`gecko_distill._quiet.cli_output`: results and warnings by default, progress
bars on a terminal only, third-party noise hidden; ``-v`` shows everything, ``--quiet`` only
results and errors. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from .._quiet import cli_output
from .._version import __version__
from ..errors import GeckoDistillError
from .options import (
    HelpFormatter,
    add_config_file_options,
    apply_config_file,
    deprecation_notes,
    dump_settings,
    has_configs,
)

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gecko-distill", description="Distil an LLM into a small text embedder (Gecko).", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _output_options(parser, default=0)
    subparsers = parser.add_subparsers(dest="command", required=True)
    from . import (  # their heavy imports happen inside the commands
        build_fret,
        export,
        mteb,
        pretrain,
        push,
        run,
        synth,
        train,
    )

    for module in (build_fret, pretrain, train, run, synth, export, push, mteb):
        module.register(subparsers)
    for command in subparsers.choices.values():
        command.formatter_class = HelpFormatter
        _output_options(command, default=argparse.SUPPRESS)  # also after the command: `build-fret ... -v`
        if has_configs(command):
            add_config_file_options(command)
    return parser


def _output_options(parser: argparse.ArgumentParser, default) -> None:
    """``-v`` and ``--quiet``; ``$GECKO_DISTILL_NO_PROGRESS`` turns the progress bars off as well."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="-v: info logs and everything third-party libraries print; -vv: debug logs (default: warnings "
        "only, third-party noise hidden)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if default == 0 else default,
        help="errors only, and no progress bars (default: warnings, and progress bars on a terminal)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gecko-distill`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    with cli_output(args.verbose, silent=args.quiet):
        for note in deprecation_notes(args):
            logger.warning(note)
        try:
            command = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
            apply_config_file(args, command)
            if getattr(args, "dump_config", None):
                return _dump_config(args, command)
            return args.func(args)
        except KeyboardInterrupt:
            print("gecko-distill: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
            if args.verbose:
                traceback.print_exc(file=sys.stderr)
            print(f"gecko-distill: error: {error_line(exc, verbose=bool(args.verbose))}", file=sys.stderr)
            return 2


def _dump_config(args: argparse.Namespace, command: argparse.ArgumentParser) -> int:
    """``--dump-config``: print (or write) the effective settings, and do nothing else."""
    text = dump_settings(args, command)
    if args.dump_config == "-":
        print(text, end="")
    else:
        Path(args.dump_config).write_text(text, encoding="utf-8")
        print(f"wrote {args.dump_config}")
    return 0


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
