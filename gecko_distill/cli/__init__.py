"""The ``gecko-distill`` command line: one module per command, shared options in one place."""

from .main import main

__all__ = ["main"]
