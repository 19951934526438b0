"""The options of the commands, made from the config classes, and the config file.

Every field of a config class is an option, named by its place in the config:
``--retrieve.top-n`` sets ``FRetConfig.retrieve.top_n``, ``--train.self-check.seed`` sets
``TrainConfig.self_check.seed``. The settings used most also have a short name
(``--top-n``, ``--epochs``, ``--lr``), the same in every command that has them. Help texts come
from the classes' docstrings, and every option's help shows its default.

The same settings can come from a TOML file (``--config run.toml``): one table per config
(``[retrieve]``, ``[train]``, ``[train.self_check]``), and the command's other settings
(``llm``, ``limit``...) as top-level keys. An option given on the command line wins over the
file. ``--dump-config`` prints the effective settings in that format, so a run is reproduced by
``--config`` on its dump. A value ``"none"`` sets a field that may be unset (``max_steps``,
``ivf_nprobe``) to ``None``.

An invalid value is an :class:`~gecko_distill.errors.InputError` naming the option as it was
typed (``--top-n 0: ...``), or the file and key it came from (``run.toml: retrieve.top_n = 0:
...``), never a traceback.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import inspect
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from ..errors import InputError
from .config_file import read_toml, toml_text

__all__ = [
    "EVAL_OPTIONS",
    "FRET_OPTIONS",
    "HelpFormatter",
    "PRETRAIN_OPTIONS",
    "TRAIN_OPTIONS",
    "ConfigOptions",
    "add_config_file_options",
    "add_option",
    "apply_config_file",
    "attribute_docs",
    "base_model_option",
    "config_or_input_error",
    "deprecation_notes",
    "dump_settings",
    "executor_from_args",
    "fret_arguments",
    "fret_config",
    "has_configs",
    "shown_value",
    "train_config",
    "training_arguments",
]

_GIVEN = "_given"  # namespace attribute: the dests set on the command line or in the config file
_SPELLED = "_spelled"  # dest -> the option string the user typed
_FROM_FILE = "_from_file"  # dest -> the config file that set it
_DEPRECATED = "_deprecated"  # notes on deprecated spellings used
_CONFIGS = "_configs"  # parser default: the ConfigOptions whose configs make the command's settings


# -- help ---------------------------------------------------------------------------------------
class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default, and each option's names once.

    The default is the option's ``shown_default`` (set by :func:`add_option`), else its value;
    deprecated spellings are left out of the help (they still work, with a warning).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.required or "(default:" in text:
            return text
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        shown = getattr(action, "shown_default", None)
        if shown is None:
            if action.default is argparse.SUPPRESS:
                return text
            shown = "off" if action.nargs == 0 and action.default in (False, None) else shown_value(action.default)
        return f"{text} (default: {_escaped(shown)})".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if action.option_strings and not action.help:  # an option with no help text still shows its default
            action = copy.copy(action)
            action.help = self._get_help_string(action)
        return super()._format_action(action)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        hidden = getattr(action, "deprecated", {})
        names = ", ".join(name for name in action.option_strings if name not in hidden)
        if action.nargs == 0:
            return names
        return f"{names} {self._format_args(action, self._get_default_metavar_for_optional(action))}"


def shown_value(value: Any) -> str:
    """A value as the help and the messages show it.

    Example:
        >>> shown_value(None), shown_value((384, 256)), shown_value(True), shown_value({"fret": 1.0}), shown_value(5e-05)
        ('none', '384 256', 'true', 'fret=1.0', '5e-05')
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(shown_value(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={shown_value(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def _escaped(text: str) -> str:
    return text.replace("%", "%%")


# -- options that remember how they were given --------------------------------------------------
class _Store(argparse.Action):
    """Store the value (``finish`` applied), remember that it was given and how it was spelled,
    and note a deprecated spelling."""

    def __init__(self, option_strings, dest, *, deprecated=None, shown_default=None, in_file=True, finish=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated: dict[str, str] = dict(deprecated or {})
        if shown_default is not None:
            self.shown_default = shown_default
        self.in_file = in_file
        self.finish = finish

    def __call__(self, parser, namespace, values, option_string=None):
        value = self.const if self.nargs == 0 else values
        setattr(namespace, self.dest, self.finish(value) if self.finish else value)
        _record(namespace, self.dest, option_string)
        if option_string in self.deprecated:
            _notes(namespace).append(f"{option_string} is deprecated; use {self.deprecated[option_string]}")


def _record(namespace: argparse.Namespace, dest: str, spelled: str | None) -> None:
    vars(namespace).setdefault(_GIVEN, set()).add(dest)
    vars(namespace).setdefault(_SPELLED, {})[dest] = spelled
    vars(namespace).setdefault(_FROM_FILE, {}).pop(dest, None)


def _notes(namespace: argparse.Namespace) -> list[str]:
    return vars(namespace).setdefault(_DEPRECATED, [])


def deprecation_notes(args: argparse.Namespace) -> list[str]:
    """What the command line said in a deprecated way (``main`` logs each as a warning)."""
    return list(getattr(args, _DEPRECATED, []))


def add_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *names: str,
    deprecated: Iterable[str] = (),
    shown_default: str | None = None,
    in_file: bool = True,
    flag: bool = False,
    **kwargs: Any,
) -> argparse.Action:
    """Add an option whose use is remembered (so a config file never overrides it).

    Args:
        parser: The parser or argument group.
        *names: The option's names; the first is the one the help shows first.
        deprecated: Old spellings: they still work, are left out of the help, and are named in a
            warning pointing to ``names[0]``.
        shown_default: The default as the help shows it (else the ``default`` value).
        in_file: Whether a config file may set it (not: output paths, ``--overwrite``).
        flag: An on/off option (``--overwrite``): no value, ``True`` when given.
        **kwargs: As ``argparse.add_argument`` (``type``, ``default``, ``help``...).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = add_option(parser, "--input-format", deprecated=["--format"], default=None)
        >>> args = parser.parse_args(["--format", "plain"])
        >>> args.input_format, deprecation_notes(args)
        ('plain', ['--format is deprecated; use --input-format'])
    """
    deprecated = list(deprecated)
    if flag:
        kwargs.update(nargs=0, const=True, default=kwargs.get("default", False))
    return parser.add_argument(
        *names,
        *deprecated,
        action=_Store,
        deprecated={old: names[0] for old in deprecated},
        shown_default=shown_default,
        in_file=in_file,
        **kwargs,
    )


# -- options made from config classes --------------------------------------------------------------
@dataclass(frozen=True)
class ConfigOptions:
    """The command-line options of one config class.

    Attributes:
        model: The config class (a pydantic model; nested models get options too).
        prefix: The options' and the config file's name for it (``"train"``: ``--train.epochs``,
            ``[train]``); ``""`` when its fields are themselves configs (``FRetConfig``:
            ``--retrieve.top-n``, ``[retrieve]``).
        short: Short names of fields (``{"retrieve.top_n": "--top-n"}``), by dotted path.
        deprecated: Old spellings of fields' options, by dotted path.
        exclude: Dotted paths of fields that are no options (the command sets them itself).
        help: Help texts that replace the docstring's, by dotted path.
        shown: Defaults as the help shows them, by dotted path.
    """

    model: type[BaseModel]
    prefix: str = ""
    short: Mapping[str, str] = field(default_factory=dict)
    deprecated: Mapping[str, Sequence[str]] = field(default_factory=dict)
    exclude: frozenset[str] = frozenset()
    help: Mapping[str, str] = field(default_factory=dict)
    shown: Mapping[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> ConfigOptions:
        """A copy with ``changes`` (such as fewer short names for another command)."""
        return dataclasses.replace(self, **changes)

    def dest(self, path: str) -> str:
        """The namespace attribute (and config file key) of a field's dotted path."""
        return f"{self.prefix}.{path}" if self.prefix else path

    def add_to(self, parser: argparse.ArgumentParser, title: str | None = None) -> None:
        """Add an option per field to ``parser``, one argument group per (nested) config.

        Example:
            >>> from gecko_distill.config import FRetConfig
            >>> parser = argparse.ArgumentParser()
            >>> FRET_OPTIONS.add_to(parser)
            >>> args = parser.parse_args(["--top-n", "8", "--relabel.max-negative-uses", "none"])
            >>> fret = FRET_OPTIONS.build(args)
            >>> fret.retrieve.top_n, fret.relabel.max_negative_uses, fret == FRetConfig(retrieve={"top_n": 8},
            ...     relabel={"max_negative_uses": None})
            (8, None, True)
        """
        self._add_model(parser, self.model, "", title)
        parser.set_defaults(**{_CONFIGS: (*(parser.get_default(_CONFIGS) or ()), self)})

    def _add_model(self, parser: argparse.ArgumentParser, model: type[BaseModel], path: str, title: str | None) -> None:
        docs = attribute_docs(model)
        name = self.dest(path.rstrip(".")) if path else self.prefix
        group = parser.add_argument_group(title or f"{name or model.__name__} ({model.__name__})") if name or title else parser
        nested = []
        for field_name, info in model.model_fields.items():
            field_path = path + field_name
            if field_path in self.exclude:
                continue
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((annotation, field_path))
                continue
            default = info.get_default(call_default_factory=True)
            names = [n for n in (self.short.get(field_path), "--" + self.dest(field_path).replace("_", "-")) if n]
            add_option(
                group,
                *names,
                dest=self.dest(field_path),
                deprecated=self.deprecated.get(field_path, ()),
                help=_escaped(self.help.get(field_path, docs.get(field_name, ""))),
                default=default,
                shown_default=self.shown.get(field_path, shown_value(default)),
                **_value_kwargs(annotation),
            )
        for sub_model, field_path in nested:
            self._add_model(parser, sub_model, field_path + ".", None)

    def build(self, args: argparse.Namespace, **fixed: Any) -> BaseModel:
        """The config of the options given (on the command line or in the config file); the
        class's defaults for the others.

        Args:
            args: The parsed command line.
            **fixed: Fields the command sets itself (not options), by name.

        Raises:
            InputError: A value is invalid; the message names the option as typed, or the file
                and key.
        """
        values: dict[str, Any] = dict(fixed)
        start = len(self.prefix) + 1 if self.prefix else 0
        for dest in sorted(getattr(args, _GIVEN, ())):
            if self.prefix and not dest.startswith(self.prefix + "."):
                continue
            path = dest[start:]
            if not self.prefix and path.split(".")[0] not in self.model.model_fields:
                continue
            target = values
            *parents, leaf = path.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = getattr(args, dest)
        return _validated(self.model, values, lambda path: _given_as(args, self.dest(path)))

    def tables(self, config: BaseModel) -> dict[str, Any]:
        """``config`` as config-file tables (without the excluded fields)."""
        data = config.model_dump(mode="json")
        for path in self.exclude:
            *parents, leaf = path.split(".")
            target = data
            for parent in parents:
                target = target.get(parent, {})
            target.pop(leaf, None)
        return {self.prefix: data} if self.prefix else data


def _value_kwargs(annotation: Any) -> dict[str, Any]:
    """``type``, ``nargs``, ``choices``, ``metavar`` and ``finish`` of an option of this type."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        nullable, annotation = len(options) < len(get_args(annotation)), options[0]
    origin = get_origin(annotation)
    kwargs: dict[str, Any] = {}
    if origin is tuple:
        kwargs["nargs"] = "+"
        annotation = get_args(annotation)[0]
        origin = get_origin(annotation)
    if origin is dict:
        return {"nargs": "*", "type": _key_value(get_args(annotation)[1]), "metavar": "KEY=VALUE", "finish": dict}
    if origin is Literal:
        choices = list(get_args(annotation))
        kwargs.update(type=str, choices=choices + ([None] if nullable else []))
        kwargs["metavar"] = "{" + ",".join(map(str, choices)) + (",none" if nullable else "") + "}"
    elif annotation is bool:
        kwargs.update(type=_boolean, metavar="{true,false}")
    else:
        kwargs.update(type=annotation, metavar={int: "N", float: "X"}.get(annotation, "TEXT"))
    if nullable:
        kwargs["type"] = _or_none(kwargs["type"])
    if kwargs.get("nargs") == "+":
        kwargs["finish"] = _tuple_or_none if nullable else tuple
    return kwargs


def _tuple_or_none(values: Sequence[Any]) -> tuple | None:
    """The values of a list option, or ``None`` for a lone ``none`` (``--dims none``)."""
    return None if list(values) == [None] else tuple(values)


def _boolean(text: str) -> bool:
    """``true``/``false`` (also ``yes``/``no``, ``1``/``0``)."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _or_none(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert_or_none(text: str) -> Any:
        return None if str(text).strip().lower() == "none" else convert(text)

    convert_or_none.__name__ = getattr(convert, "__name__", "value")
    return convert_or_none


def _key_value(convert: Callable[[str], Any]) -> Callable[[str], tuple[str, Any]]:
    def key_value(text: str) -> tuple[str, Any]:
        key, sep, value = str(text).partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        return key.strip(), convert(value)

    return key_value


def attribute_docs(model: type) -> dict[str, str]:
    """The first sentence of each entry of a class docstring's ``Attributes:`` section.

    Example:
        >>> from gecko_distill.config import RetrieveConfig
        >>> attribute_docs(RetrieveConfig)["batch_size"]
        'Encoding batch size.'
    """
    lines = (inspect.getdoc(model) or "").splitlines()
    if "Attributes:" not in lines:
        return {}
    docs: dict[str, str] = {}
    current = None
    for line in lines[lines.index("Attributes:") + 1 :]:
        if line.strip() and not line.startswith(" "):
            break
        entry = re.match(r"^ {4}(\w+):\s*(.*)$", line)
        if entry:
            current = entry.group(1)
            docs[current] = entry.group(2)
        elif current and line.strip():
            docs[current] += " " + line.strip()
    return {name: _first_sentence(_plain(text)) for name, text in docs.items()}


def _plain(text: str) -> str:
    """Docstring markup as plain text: ``:class:`~a.B``` -> ``B``, ````x```` -> ``x``, ``None`` -> ``none``."""
    text = re.sub(r":\w+:`~?([^`<]*?)\s*(?:<[^>]*>)?`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = text.replace("``", "")
    return re.sub(r"\bNone\b", "none", text)  # as the command line and config files write it


def _first_sentence(text: str) -> str:
    for match in re.finditer(r"\.(?=\s|$)", text):
        before = text[: match.start()]
        if not re.search(r"\b(e\.g|i\.e|etc|vs|cf|al)$", before) and before.count("(") == before.count(")"):
            return text[: match.end()]
    return text


# -- building configs, and naming what was wrong ----------------------------------------------------
def _given_as(args: argparse.Namespace, dest: str) -> tuple[str, str] | None:
    """How the user gave ``dest``: ``(name, "name value")``, by its option or its file key; ``None``
    when not given."""
    if dest not in getattr(args, _GIVEN, ()):
        return None
    value = shown_value(getattr(args, dest, None))
    source = getattr(args, _FROM_FILE, {}).get(dest)
    if source is not None:
        return dest, f"{source}: {dest} = {value}"
    spelled = getattr(args, _SPELLED, {}).get(dest) or dest
    return spelled, f"{spelled} {value}"


def _validated(model: type[BaseModel], values: dict[str, Any], given_as: Callable[[str], tuple[str, str] | None]):
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, model, given_as) for error in exc.errors())
        raise InputError(f"invalid option: {problems}") from None


def _problem(error: Mapping[str, Any], model: type[BaseModel], given_as: Callable[[str], tuple[str, str] | None]) -> str:
    """One pydantic error, worded with the options (or file keys) the user gave."""
    msg = error["msg"].removeprefix("Value error, ")
    loc = [str(part) for part in error["loc"]]
    while loc and loc[-1].isdigit():  # an element of a list: the option is the list's
        loc.pop()
    path = ".".join(loc)
    sub_model = _model_at(model, loc)
    if sub_model is None:  # a field: name its option and the value given
        given = given_as(path)
        return f"{given[1]}: {msg}" if given else f"{path}: {msg}"
    # a config as a whole (a rule between fields): name each option its message mentions
    mentioned = [(name, given_as(f"{path}.{name}" if path else name)) for name in sub_model.model_fields]
    mentioned = [(name, given) for name, given in mentioned if given and re.search(rf"\b{name}\b", msg)]
    for name, given in mentioned:
        msg = re.sub(rf"\b{name}\b", given[0], msg)
    shown = ", ".join(given[1] for _, given in mentioned)
    return f"{msg} (given: {shown})" if shown else (f"{path}: {msg}" if path else msg)


def _model_at(model: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    """The config class at ``loc`` in ``model`` (``None`` when ``loc`` is a field)."""
    for name in loc:
        info = model.model_fields.get(name)
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            return None
        model = info.annotation
    return model


def config_or_input_error(cls, options: Mapping[str, str] | None = None, /, **values):
    """Build a config from values the command chose; an invalid one is an ``InputError`` (one
    line), not a traceback.

    Args:
        cls: The config class.
        options: The command-line option of each field (``{"top_n": "--top-n"}``): the message names
            the option and the value given. Fields not in it are named as they are.
        **values: The config's fields.

    Example:
        >>> from gecko_distill.config import RetrieveConfig
        >>> config_or_input_error(RetrieveConfig, {"top_n": "--top-n"}, top_n=20, input_format="gekko")
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: invalid option: input_format: Input should be 'native', 'gecko', 'e5' or 'plain'
    """
    options = options or {}

    def given_as(path: str) -> tuple[str, str] | None:
        if path in options and path in values:
            return options[path], f"{options[path]} {shown_value(values[path])}"
        return None

    return _validated(cls, values, given_as)


# -- the config file ---------------------------------------------------------------------------------
def add_config_file_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--dump-config [FILE]`` (see the module docstring)."""
    group = parser.add_argument_group("config file")
    add_option(
        group,
        "--config",
        metavar="FILE",
        default=None,
        in_file=False,
        help="TOML file of settings: one table per config ([generate], [train]...), other options as top-level "
        "keys; options given on the command line win",
    )
    add_option(
        group,
        "--dump-config",
        metavar="FILE",
        nargs="?",
        const="-",
        default=None,
        in_file=False,
        shown_default="off",
        help="write the effective settings as TOML to FILE (or stdout: no FILE, or '-') and stop, doing nothing "
        "else; --config of that file reproduces them",
    )


def apply_config_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Set the options of ``parser`` that ``args.config`` names and the command line does not.

    Raises:
        InputError: The file is missing or not valid TOML, or a key is no setting of the command,
            or a value is invalid; the message names the file and the key.
    """
    path = getattr(args, "config", None)
    if not path:
        return
    data = read_toml(path)
    settable = {action.dest: action for action in parser._actions if getattr(action, "in_file", False)}
    given = vars(args).setdefault(_GIVEN, set())
    for key, value in _file_keys(data, settable):
        action = settable.get(key)
        if action is None:
            close = difflib.get_close_matches(key, settable, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; see {parser.prog} --help"
            raise InputError(f"{path}: unknown setting {key!r} for {parser.prog.split()[-1]}{hint}")
        if key in given:
            continue  # the command line wins
        setattr(args, key, _file_value(path, key, value, action))
        given.add(key)
        vars(args).setdefault(_FROM_FILE, {})[key] = str(path)


def _file_keys(data: Mapping[str, Any], settable: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        dotted = prefix + key
        if isinstance(value, dict) and dotted not in settable:
            yield from _file_keys(value, settable, dotted + ".")
        else:
            yield dotted, value


def _file_value(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """A config-file value converted and checked as the same text on the command line would be."""
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise InputError(f"{path}: {key} = {value!r}: expected true or false")
        return value
    many = action.nargs in ("+", "*")
    if isinstance(value, dict) and many:
        items = [f"{k}={v}" for k, v in value.items()]
    elif isinstance(value, list):
        if not many:
            raise InputError(f"{path}: {key} = {value!r}: expected one value, not a list")
        items = value
    else:
        items = [value]
    converted = []
    for item in items:
        text = item if isinstance(item, str) else shown_value(item)
        try:
            item_value = action.type(text) if action.type else text
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise InputError(f"{path}: {key} = {item!r}: {exc}") from None
        if action.choices is not None and item_value not in action.choices:
            choices = ", ".join(shown_value(c) for c in action.choices)
            raise InputError(f"{path}: {key} = {item!r}: choose from {choices}")
        converted.append(item_value)
    result = converted if many else converted[0]
    finish = getattr(action, "finish", None)
    return finish(result) if finish else result


def has_configs(parser: argparse.ArgumentParser) -> bool:
    """Whether a command has options made from config classes (and so takes ``--config``)."""
    return bool(parser.get_default(_CONFIGS))


def dump_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The effective settings of the command as config-file text (see :func:`apply_config_file`).

    Raises:
        InputError: An option is invalid (as when the command runs).
    """
    configs = getattr(args, _CONFIGS, ()) or ()
    config_dests = {action.dest for spec in configs for action in parser._actions if _belongs(spec, action.dest)}
    top = {
        action.dest: getattr(args, action.dest)
        for action in parser._actions
        if getattr(action, "in_file", False) and action.dest not in config_dests and getattr(args, action.dest, None) is not None
    }
    tables: dict[str, Any] = {}
    for spec in configs:
        tables.update(spec.tables(spec.build(args)))
    command = parser.prog
    return toml_text({**top, **tables}, header=f"{command}: effective settings (reuse with --config FILE)")


def _belongs(spec: ConfigOptions, dest: str) -> bool:
    if spec.prefix:
        return dest.startswith(spec.prefix + ".")
    return dest.split(".")[0] in spec.model.model_fields and "." in dest


# -- the configs of the commands ----------------------------------------------------------------------
def _fret_options() -> ConfigOptions:
    from ..config import FRetConfig

    return ConfigOptions(
        FRetConfig,
        short={
            "generate.queries_per_passage": "--queries-per-passage",
            "generate.temperature": "--temperature",
            "generate.language": "--language",
            "retrieve.top_n": "--top-n",
            "retrieve.backend": "--embed-backend",
            "relabel.rank_by": "--rank-by",
            "relabel.scoring": "--scoring",
            "relabel.negative": "--negative",
        },
        help={
            "generate.queries_per_passage": "samples per passage (more than 1 samples at --temperature)",
            "generate.temperature": "generation temperature",
            "generate.language": "language of the queries: auto (each passage's own, detected; a warning when the "
            "corpus's language is not the one set), a code or English name (de, zh, German...) for every passage, or any "
            "(the English prompt, every script kept); see docs/languages.md",
            "retrieve.top_n": "candidates per query (paper: 20)",
            "retrieve.backend": "what runs the miner: torch, onnx (ONNX Runtime; pip install 'gecko-distill[onnx]'), "
            "onnx-int8, openvino (pip install 'gecko-distill[openvino]'); see docs/backends.md",
            "relabel.rank_by": "auto: a teacher check decides which signals to fuse; rrf: QL and RC fused (the paper); "
            "ql, rc: one signal; seed: the seed stays the positive",
        },
        shown={"generate.temperature": "0, or 0.7 with --queries-per-passage above 1"},
    )


def _train_options() -> ConfigOptions:
    from ..embedder.train import TrainConfig

    return ConfigOptions(
        TrainConfig,
        prefix="train",
        short={
            "epochs": "--epochs",
            "max_steps": "--max-steps",
            "batch_size": "--batch-size",
            "learning_rate": "--lr",
            "matryoshka_dims": "--dims",
            "scale": "--scale",
            "loss_directions": "--loss-directions",
            "max_seq_length": "--max-seq-length",
            "seed": "--seed",
            "query_format": "--input-format",
            "eval_steps": "--eval-steps",
        },
        deprecated={"query_format": ("--query-format",)},
        help={
            "query_format": "input format the model is trained in: gecko 'task: … | query: …' / 'title: … | text: …', "
            "e5 'Instruct: …\\nQuery: …' / the text, or plain; none: the FRet folder's manifest, else the base model's "
            "own (plain for a model not trained here)",
            "eval_steps": "with --eval, validate every N steps; none: each epoch",
        },
        shown={"matryoshka_dims": "none: the full dimension, 256, 128, 64", "mix_ratios": "none: each set once per epoch"},
    )


def _eval_options() -> ConfigOptions:
    from ..embedder.evaluate import EvalConfig

    return ConfigOptions(
        EvalConfig,
        prefix="evaluation",  # not "eval": that is the BEIR folder of train --eval and run --eval
        short={"input_format": "--input-format", "task": "--task", "split": "--split", "batch_size": "--batch-size"},
        deprecated={"input_format": ("--format",)},
        help={
            "input_format": "gecko: 'task: … | query: …' / 'title: … | text: …'; e5: 'Instruct: …\\nQuery: …' / "
            "title + text; plain: raw query, title + text; none: the model's own format, from its gecko_distill.json "
            "(plain for a model not trained here)",
            "task": "task description of gecko- and e5-format queries",
            "split": "qrels split: qrels/<split>.tsv",
        },
    )


def _pretrain_options() -> ConfigOptions:
    from ..embedder.pretrain import PretrainConfig

    return ConfigOptions(
        PretrainConfig,
        prefix="pretrain",
        short={
            "epochs": "--epochs",
            "batch_size": "--batch-size",
            "learning_rate": "--lr",
            "max_seq_length": "--max-seq-length",
            "min_pairs": "--min-pairs",
            "seed": "--seed",
            "query_format": "--input-format",
        },
        deprecated={"query_format": ("--query-format",)},
        help={"query_format": "input format; none: the base model's own (plain for a model not trained here)"},
    )


FRET_OPTIONS = _fret_options()
#: ``build-fret`` and ``run``: ``FRetConfig`` (``--top-n``, ``--retrieve.top-n``...).
TRAIN_OPTIONS = _train_options()
#: ``train`` and ``run``: ``TrainConfig`` (``--epochs``, ``--train.epochs``...).
EVAL_OPTIONS = _eval_options()
#: ``eval``: ``EvalConfig`` (``--input-format``, ``--task``, ``--split``, ``--batch-size``).
PRETRAIN_OPTIONS = _pretrain_options()
#: ``pretrain``: ``PretrainConfig``.


def fret_arguments(p: argparse.ArgumentParser) -> None:
    """The FRet options of ``build-fret`` (and ``run``): passages, teacher, retrieval, relabelling."""
    add_option(p, "--limit", type=int, default=None, metavar="N", help="use only the first N passages", shown_default="none: all")
    teacher = p.add_argument_group("teacher and embedder")
    add_option(
        teacher,
        "--llm",
        default="gemma3-270m",
        metavar="NAME",
        help="teacher: gemma3-270m, smollm2-135m, a .gguf file or model folder, hf:<id>, gemini:<model>, openai:<model>, "
        "vllm:<model>, ollama:<model>, llamacpp:<model>",
    )
    add_option(
        teacher,
        "--llm-dtype",
        choices=["auto", "bfloat16", "float32"],
        default=None,
        help="precision of a local teacher: auto is bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX), "
        "fp32 elsewhere",
        shown_default="auto",
    )
    add_option(
        teacher,
        "--scorer",
        default=None,
        metavar="NAME",
        help="a second backend for relabelling (same names as --llm; the --llm-* settings do not apply to it)",
        shown_default="none: the teacher",
    )
    add_option(
        teacher,
        "--embedder",
        default=None,
        metavar="MODEL",
        help="sentence-transformers model folder or hub id of the miner",
        shown_default="all-MiniLM-L6-v2",
    )
    add_option(
        teacher,
        "--prices",
        default=None,
        metavar="FILE",
        help='JSON price table for the cost estimate: {"model": {"input_per_mtok": 0.3, "output_per_mtok": 2.5}}',
        shown_default="the built-in table",
    )
    api = p.add_argument_group("API teacher (settings of --llm only; --scorer uses its backend's defaults)")
    add_option(
        api,
        "--llm-base-url",
        default=None,
        metavar="URL",
        help="server URL of an API teacher (e.g. http://localhost:8000/v1)",
        shown_default="the backend's",
    )
    add_option(
        api,
        "--llm-api-key-env",
        default=None,
        metavar="NAME",
        help="name of the environment variable holding the API key",
        shown_default="the backend's",
    )
    add_option(
        api,
        "--llm-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="requests in flight at once",
        shown_default="the backend's",
    )
    add_option(api, "--llm-rpm", type=int, default=None, metavar="N", help="requests per minute limit", shown_default="none")
    add_option(api, "--llm-tpm", type=int, default=None, metavar="N", help="tokens per minute limit", shown_default="none")
    add_option(
        api,
        "--llm-batch",
        flag=True,
        help="send the requests through the provider's batch API (Gemini, OpenAI-compatible /v1/batches): half "
        "price, answers within hours; a rerun resumes the jobs (docs/backends.md)",
    )
    add_option(p, "--overwrite", flag=True, in_file=False, help="rebuild stages whose saved output has another config")
    scale = p.add_argument_group("execution (docs/scaling.md)")
    add_option(
        scale,
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where the LLM and embedding work runs: this process, or a Ray cluster (pip install 'gecko-distill[ray]')",
    )
    add_option(
        scale,
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster to join with --executor ray (auto, ray://host:10001)",
        shown_default="a local cluster, started for the run",
    )
    FRET_OPTIONS.add_to(p)


def executor_from_args(args: argparse.Namespace):
    """``build_fret``'s executor from ``--executor`` and ``--ray-address`` (``None``: this process).

    Raises:
        InputError: ``--ray-address`` without ``--executor ray``.
    """
    if args.executor != "ray":
        if args.ray_address:
            raise InputError(f"invalid option: --ray-address {args.ray_address}: it needs --executor ray")
        return None
    from ..scale import RayExecutor

    return RayExecutor(address=args.ray_address)


def fret_config(args: argparse.Namespace):
    """The :class:`~gecko_distill.config.FRetConfig` of :func:`fret_arguments`' options.

    Call it before any work: it also checks ``--limit``.

    Raises:
        InputError: An option is invalid; the message names it (``--top-n 0: ...``).
    """
    if args.limit is not None and args.limit < 1:
        raise InputError(f"invalid option: --limit {args.limit}: give a positive number of passages")
    return FRET_OPTIONS.build(args)


def base_model_option(p: argparse.ArgumentParser) -> None:
    """``--base-model``: the model ``train``, ``run`` and ``pretrain`` start from."""
    add_option(
        p,
        "--base-model",
        default=None,
        metavar="MODEL",
        help="model folder or hub id to start from",
        shown_default="all-MiniLM-L6-v2",
    )


def training_arguments(p: argparse.ArgumentParser) -> None:
    """The training options of ``train`` (and ``run``); :func:`train_config` reads them."""
    base_model_option(p)
    TRAIN_OPTIONS.add_to(p)


def train_config(args: argparse.Namespace, **more):
    """The :class:`~gecko_distill.embedder.train.TrainConfig` of :func:`training_arguments`' options
    (and ``more``, fields the command sets itself)."""
    return TRAIN_OPTIONS.build(args, **more)
