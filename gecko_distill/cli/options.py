"""Options shared by several commands, and the configs they build.

``build-fret`` and ``run`` share :func:`fret_arguments`; ``train`` and ``run`` share
:func:`training_arguments`. An invalid value is an :class:`~gecko_distill.errors.InputError`
(one line), never a traceback.
"""

from __future__ import annotations

import argparse

from ..embedder.formatting import QUERY_FORMATS

__all__ = ["config_or_input_error", "fret_arguments", "fret_config", "train_config", "training_arguments"]


def fret_arguments(p: argparse.ArgumentParser) -> None:
    """The FRet options of ``build-fret`` (and ``run``): passages, teacher, retrieval, relabelling."""
    p.add_argument("--limit", type=int, default=None, help="use only the first N passages")
    p.add_argument("--queries-per-passage", type=int, default=1, help="samples per passage (>1 samples at --temperature)")
    p.add_argument("--temperature", type=float, default=None, help="generation temperature (default 0, or 0.7 with K>1)")
    p.add_argument("--top-n", type=int, default=20, help="candidates per query (paper: 20)")
    p.add_argument("--rank-by", choices=["rrf", "ql", "rc", "seed"], default="rrf")
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


def fret_config(args: argparse.Namespace):
    """The :class:`~gecko_distill.config.FRetConfig` of :func:`fret_arguments`' options."""
    from ..config import FRetConfig, GenerateConfig, RelabelConfig, RetrieveConfig

    temperature = args.temperature if args.temperature is not None else (0.7 if args.queries_per_passage > 1 else 0.0)
    return FRetConfig(
        generate=GenerateConfig(queries_per_passage=args.queries_per_passage, temperature=temperature),
        retrieve=RetrieveConfig(top_n=args.top_n),
        relabel=RelabelConfig(rank_by=args.rank_by, scoring=args.scoring, negative=args.negative),
    )


def training_arguments(p: argparse.ArgumentParser) -> None:
    """The training options of ``train`` (and ``run``); :func:`train_config` reads them."""
    p.add_argument("--base-model", default=None, help="model folder to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after N steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="Matryoshka dims (default: full, 256, 128, 64)")
    p.add_argument("--scale", type=float, default=20.0, help="similarity scale = 1 / temperature")
    p.add_argument("--loss-directions", choices=["gecko", "infonce", "gte"], default="gecko")
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--query-format", choices=QUERY_FORMATS, default=None,
                   help="input format: gecko 'task: … | query: …' / 'title: … | text: …', or e5 'Instruct: …\\nQuery: …' / "
                   "the text (default: the folder's manifest, else gecko)")


def train_config(args: argparse.Namespace, **more):
    """The :class:`~gecko_distill.embedder.train.TrainConfig` of :func:`training_arguments`' options (and ``more``)."""
    from ..embedder.train import TrainConfig

    return config_or_input_error(
        TrainConfig,
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


def config_or_input_error(cls, **values):
    """Build a config; an invalid option is an ``InputError`` (one line), not a traceback."""
    from pydantic import ValidationError

    from ..errors import InputError

    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"invalid option: {problems}") from None
