"""Options shared by several commands, and the configs they build.

``build-fret`` and ``run`` share :func:`fret_arguments`; ``train`` and ``run`` share
:func:`training_arguments`. An invalid value is an :class:`~gecko_distill.errors.InputError`
(one line naming the option, such as ``--top-n``), never a traceback.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

from ..embedder.formatting import QUERY_FORMATS

__all__ = [
    "FRET_OPTIONS",
    "TRAIN_OPTIONS",
    "config_or_input_error",
    "fret_arguments",
    "fret_config",
    "train_config",
    "training_arguments",
]


def fret_arguments(p: argparse.ArgumentParser) -> None:
    """The FRet options of ``build-fret`` (and ``run``): passages, teacher, retrieval, relabelling."""
    p.add_argument("--limit", type=int, default=None, help="use only the first N passages")
    p.add_argument("--queries-per-passage", type=int, default=1, help="samples per passage (>1 samples at --temperature)")
    p.add_argument("--temperature", type=float, default=None, help="generation temperature (default 0, or 0.7 with K>1)")
    p.add_argument("--top-n", type=int, default=20, help="candidates per query (paper: 20)")
    p.add_argument("--rank-by", choices=["auto", "rrf", "ql", "rc", "seed"], default="auto",
                   help="auto: a teacher check decides which signals to fuse (default); rrf: QL and RC fused (the paper); "
                   "ql, rc: one signal; seed: the seed stays the positive")
    p.add_argument("--scoring", choices=["fused", "separate"], default="fused")
    p.add_argument("--negative", choices=["last", "random"], default="last")
    p.add_argument(
        "--llm",
        default="gemma3-270m",
        help="teacher: gemma3-270m (default), smollm2-135m, a .gguf file or model folder, hf:<id>, "
        "gemini:<model>, openai:<model>, vllm:<model>, ollama:<model>, llamacpp:<model>",
    )
    p.add_argument("--scorer", default=None, help="a second backend for relabelling (same names as --llm)")
    p.add_argument("--llm-base-url", default=None, help="server URL of an API teacher (e.g. http://localhost:8000/v1)")
    p.add_argument("--llm-api-key-env", default=None, help="name of the environment variable holding the API key")
    p.add_argument("--llm-concurrency", type=int, default=None, help="requests in flight at once (API teachers)")
    p.add_argument("--llm-rpm", type=int, default=None, help="requests per minute limit (API teachers)")
    p.add_argument("--llm-tpm", type=int, default=None, help="tokens per minute limit (API teachers)")
    p.add_argument("--embedder", default=None, help="sentence-transformers model folder (default all-MiniLM-L6-v2)")
    p.add_argument("--overwrite", action="store_true", help="rebuild stages whose saved output has another config")
    p.add_argument(
        "--prices",
        default=None,
        help='JSON price table for the cost estimate: {"model": {"input_per_mtok": 0.3, "output_per_mtok": 2.5}}',
    )


def _option_names(*fields: str, **renamed: str) -> dict[str, str]:
    """``{field: "--field-name"}`` of config fields, with the options named otherwise in ``renamed``."""
    return {**{field: "--" + field.replace("_", "-") for field in fields}, **renamed}


#: The command-line option of each config field that ``eval`` sets.
EVAL_OPTIONS = _option_names("batch_size", "split", "task", input_format="--format")
#: The command-line option of each config field that ``fret_arguments`` sets.
FRET_OPTIONS = _option_names("queries_per_passage", "temperature", "top_n", "rank_by", "scoring", "negative")
#: The command-line option of each config field that ``training_arguments`` (and ``train``) set.
TRAIN_OPTIONS = _option_names(
    "epochs", "max_steps", "batch_size", "scale", "loss_directions", "max_seq_length", "seed", "query_format",
    "eval_steps", learning_rate="--lr", matryoshka_dims="--dims",
)


def fret_config(args: argparse.Namespace):
    """The :class:`~gecko_distill.config.FRetConfig` of :func:`fret_arguments`' options.

    Call it before any work: it also checks ``--limit``.

    Raises:
        InputError: An option is invalid; the message names it (``--top-n 0: ...``).
    """
    from ..config import FRetConfig, GenerateConfig, RelabelConfig, RetrieveConfig
    from ..errors import InputError

    if args.limit is not None and args.limit < 1:
        raise InputError(f"invalid option: --limit {args.limit}: give a positive number of passages")
    temperature = args.temperature if args.temperature is not None else (0.7 if args.queries_per_passage > 1 else 0.0)
    return FRetConfig(
        generate=config_or_input_error(
            GenerateConfig, FRET_OPTIONS, queries_per_passage=args.queries_per_passage, temperature=temperature
        ),
        retrieve=config_or_input_error(RetrieveConfig, FRET_OPTIONS, top_n=args.top_n),
        relabel=config_or_input_error(
            RelabelConfig, FRET_OPTIONS, rank_by=args.rank_by, scoring=args.scoring, negative=args.negative
        ),
    )


def training_arguments(p: argparse.ArgumentParser) -> None:
    """The training options of ``train`` (and ``run``); :func:`train_config` reads them."""
    p.add_argument("--base-model", default=None, help="model folder to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the training data")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="Matryoshka dims (default: full, 256, 128, 64)")
    p.add_argument("--scale", type=float, default=20.0, help="similarity scale = 1 / temperature")
    p.add_argument("--loss-directions", choices=["gecko", "infonce", "gte"], default="gecko")
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--query-format", choices=QUERY_FORMATS, default=None,
                   help="input format: gecko 'task: … | query: …' / 'title: … | text: …', e5 'Instruct: …\\nQuery: …' / "
                   "the text, or plain (default: the folder's manifest, else the base model's own: plain for a model "
                   "not trained here)")


def train_config(args: argparse.Namespace, **more):
    """The :class:`~gecko_distill.embedder.train.TrainConfig` of :func:`training_arguments`' options (and ``more``)."""
    from ..embedder.train import TrainConfig

    return config_or_input_error(
        TrainConfig,
        TRAIN_OPTIONS,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        matryoshka_dims=tuple(args.dims) if args.dims else None,
        scale=args.scale,
        loss_directions=args.loss_directions,
        max_seq_length=args.max_seq_length,
        seed=args.seed,
        query_format=args.query_format,
        **more,
    )


def config_or_input_error(cls, options: Mapping[str, str] | None = None, /, **values):
    """Build a config; an invalid option is an ``InputError`` (one line), not a traceback.

    Args:
        cls: The config class.
        options: The command-line option of each field (``{"top_n": "--top-n"}``): the message names
            the option and the value given. Fields not in it are named as they are.
        **values: The config's fields.

    Example:
        >>> from gecko_distill.config import RetrieveConfig
        >>> config_or_input_error(RetrieveConfig, FRET_OPTIONS, top_n=20, input_format="gekko")
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: invalid option: input_format: Input should be 'native', 'gecko', 'e5' or 'plain'
    """
    from pydantic import ValidationError

    from ..errors import InputError

    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, options or {}, values) for error in exc.errors())
        raise InputError(f"invalid option: {problems}") from None


def _problem(error: Mapping[str, Any], options: Mapping[str, str], values: Mapping[str, Any]) -> str:
    """One pydantic error, worded with the command-line options of ``options``."""
    msg = error["msg"].removeprefix("Value error, ")
    loc = error["loc"]
    if loc and loc[0] in options:  # a field: name its option and the value given
        return f"{options[loc[0]]} {_shown(values.get(loc[0], error.get('input')))}: {msg}"
    if loc:
        return f"{'.'.join(map(str, loc))}: {msg}"
    # the config as a whole (a rule between fields): name each option its message mentions
    mentioned = [field for field in options if field in values and re.search(rf"\b{field}\b", msg)]
    for field in mentioned:
        msg = re.sub(rf"\b{field}\b", options[field], msg)
    given = ", ".join(f"{options[field]} {_shown(values[field])}" for field in mentioned)
    return f"{msg} (given: {given})" if given else msg


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)
