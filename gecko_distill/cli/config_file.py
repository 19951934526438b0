"""Read and write the TOML config files of ``--config`` and ``--dump-config``.

Reading uses the standard library's ``tomllib`` (Python 3.11+; ``tomli`` before). Writing
needs only what the settings hold (strings, numbers, booleans, lists, tables), so a small
writer does it; ``None`` is written as ``"none"``, which the options read back as ``None``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import InputError

__all__ = ["read_toml", "toml_text"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of a TOML file; a missing or invalid file is an ``InputError`` naming it.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
        >>> _ = open(path, "w").write("limit = 5\\n[retrieve]\\ntop_n = 8\\n")
        >>> read_toml(path)
        {'limit': 5, 'retrieve': {'top_n': 8}}
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = require("tomli", "tomli")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a config file") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def toml_text(data: Mapping[str, Any], header: str = "") -> str:
    """``data`` as TOML: its plain keys first, then a table per mapping (``[train.self_check]``).

    Example:
        >>> print(toml_text({"llm": "gemma3-270m", "limit": None, "retrieve": {"top_n": 8, "seed": 0},
        ...     "train": {"dims": [384, 64], "lr": 5e-05, "mix": {}, "check": {"on": True}}}, header="run"), end="")
        # run
        llm = "gemma3-270m"
        limit = "none"
        <BLANKLINE>
        [retrieve]
        top_n = 8
        seed = 0
        <BLANKLINE>
        [train]
        dims = [384, 64]
        lr = 5e-05
        mix = {}
        <BLANKLINE>
        [train.check]
        on = true
    """
    lines = [f"# {line}" for line in header.splitlines()]
    _table(lines, data, ())
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], data: Mapping[str, Any], path: tuple[str, ...]) -> None:
    plain = {k: v for k, v in data.items() if not (isinstance(v, Mapping) and v)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping) and v}
    if path and (plain or not tables):
        lines += ["", "[" + ".".join(_key(part) for part in path) + "]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in plain.items()]
    for key, value in tables.items():
        _table(lines, value, (*path, key))


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML: {value!r}")


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
