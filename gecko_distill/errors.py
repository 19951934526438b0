"""Exceptions raised by gecko_distill. Each message names the file, line or record at fault."""

from __future__ import annotations

__all__ = ["GeckoDistillError", "InputError", "StaleOutputError", "OutputFolderInUseError", "MissingDependencyError"]


class GeckoDistillError(Exception):
    """Base class of the library's errors."""


class InputError(GeckoDistillError, ValueError):
    """Bad input data: the message names the file and line, or the record id."""


class StaleOutputError(GeckoDistillError):
    """An output folder holds a stage written with another config or input."""


class OutputFolderInUseError(GeckoDistillError):
    """Another run is using the output folder (it holds the folder's lock)."""


class MissingDependencyError(GeckoDistillError, ImportError):
    """An optional dependency is missing; the message says what to install."""
