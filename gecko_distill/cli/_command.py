"""A subcommand of ``gecko-distill`` as data, and the one function that adds such commands to
the parser: a command module lists its commands and its ``register`` passes them to
:func:`add_commands`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command", "add_commands"]


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: What the user types (``"eval"``).
        summary: One line for ``gecko-distill --help``.
        arguments: Adds the command's arguments and options to its parser.
        run: Runs the command on the parsed arguments; returns the exit code.
        description: The text above the options in ``gecko-distill NAME --help``
            (``None``: the summary).
    """

    name: str
    summary: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def add_commands(subparsers: argparse._SubParsersAction, *commands: Command) -> None:
    """Add ``commands`` to a ``gecko-distill`` parser; each parse sets ``args.func`` to its ``run``.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> hello = Command("hello", "say hello", lambda p: p.add_argument("who"), lambda args: print("hello", args.who) or 0)
        >>> add_commands(parser.add_subparsers(dest="command"), hello)
        >>> args = parser.parse_args(["hello", "gecko"]); args.func(args)
        hello gecko
        0
    """
    for command in commands:
        p = subparsers.add_parser(command.name, help=command.summary, description=command.description)
        command.arguments(p)
        p.set_defaults(func=command.run)
