"""Gecko's first round: fine-tune the miner on (query, seed passage) pairs before mining.

Gecko mines its candidates with "an embedding model trained on (query, seed passage) pairs"
rather than with the raw base model: the seed is relevant to the query it was written from, so a
short round of in-batch-negative training on these pairs teaches the miner the corpus and the
query style, and the candidates the teacher then ranks are better. :func:`train_miner` runs that
round with the library's own trainer (one epoch, in-batch negatives, plain input), and the
``retrieve`` stage mines with the result.

The round-1 model is saved in ``<output_dir>/round1``; its identity (a fingerprint of the
queries, the base embedder and the settings) enters the retrieve stage's fingerprint, so a
changed round 1 invalidates what was mined with it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import fingerprint
from ..config import Round1Config
from ..embedder.pretrain import pair_examples as round1_examples  # (query, seed) pairs as FRet examples
from ..records import GeneratedQuery, Passage

__all__ = ["round1_examples", "train_miner"]

logger = logging.getLogger(__name__)

_DONE = "round1.done"


def train_miner(
    queries: Sequence[GeneratedQuery],
    passages: Sequence[Passage],
    embedder: Any,
    config: Round1Config,
    folder: Path | None,
    identity: str,
) -> tuple[Any, dict[str, Any]]:
    """Train the round-1 miner, or reuse the one already in ``folder`` with the same identity.

    Args:
        queries: The generated queries (their seeds are the positives).
        passages: The corpus.
        embedder: The base embedder (a model, a folder, or ``None`` for the default).
        config: Round-1 settings.
        folder: Where the model is saved (``None``: a temporary folder, nothing kept).
        identity: A fingerprint of everything the model depends on.

    Returns:
        The miner (a model folder) and statistics.
    """
    from ..embedder.selfcheck import SelfCheckConfig
    from ..embedder.train import TrainConfig, train

    examples = round1_examples(queries, passages, spread=True)  # negatives never share a batch with their pair
    stats: dict[str, Any] = {"pairs": len(examples), "identity": identity[:16]}
    if len({e.positive.id for e in examples}) < 2 * config.batch_size:
        stats["skipped"] = f"too few distinct seeds ({len(examples)}) for batches of {config.batch_size}"
        logger.info("round 1: %s; mining with the base embedder", stats["skipped"])
        return embedder, stats
    if folder is None:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="gecko_round1_"))
    marker = folder / _DONE
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() == identity:
        logger.info("round 1: reusing the miner in %s", folder)
        return str(folder), {**stats, "reused": True}
    logger.info("round 1: training the miner on %d (query, seed) pairs", len(examples))
    settings = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        matryoshka_dims=None,
        loss_directions="infonce",
        max_seq_length=config.max_seq_length,
        seed=config.seed,
        query_format="plain",  # a short round cannot teach a new format: the miner keeps reading plain text
        self_check=SelfCheckConfig(holdout_fraction=0.0),
    )
    base = copy.deepcopy(embedder) if embedder is not None and not isinstance(embedder, (str, Path)) else embedder
    train(examples, base_model=base, output_dir=folder, config=settings, overwrite=True)  # never the caller's model
    marker.write_text(identity + "\n", encoding="utf-8")
    return str(folder), stats


def round1_identity(queries: Sequence[GeneratedQuery], embedder_id: str, config: Round1Config) -> str:
    """What the round-1 miner depends on: the queries, the base embedder and the settings."""
    return fingerprint(
        "round1", "spread-negatives", [(q.id, q.passage_id, q.task, q.query) for q in queries], embedder_id, config
    )
