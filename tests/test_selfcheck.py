"""The self-check against degradation (issue 12): a held-out FRet slice decides what is saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gecko_distill.embedder.encoding import PROVENANCE_FILE, load_model
from gecko_distill.embedder.selfcheck import SelfCheckConfig, VariantScores, choose_variant, holdout_split
from gecko_distill.embedder.train import TrainConfig, train
from gecko_distill.records import FRetExample, Passage


def flipped_labels(passages: list[Passage], n: int, config: SelfCheckConfig) -> list[FRetExample]:
    """Queries made of a passage's first words. The held-out ones keep their true passage as the
    positive; the training ones get an unrelated passage: a teacher that ranks wrongly."""

    def example(i: int, positive: Passage) -> FRetExample:
        seed = passages[i]
        return FRetExample(
            id=f"q{i}",
            task="Given a question, retrieve the passage that answers it",
            query=" ".join(seed.text.split()[:12]),
            positive=positive,
            negative=passages[(i + 1) % n],
            seed_passage_id=seed.id,
            positive_is_seed=positive.id == seed.id,
            positive_ranks={},
            negative_ranks={},
        )

    truthful = [example(i, passages[i]) for i in range(n)]
    _, held = holdout_split(truthful, config)
    held_ids = {e.id for e in held}
    return [e if e.id in held_ids else example(i, passages[(i + n // 2) % n]) for i, e in enumerate(truthful)]


def test_choose_variant_needs_a_gain_at_every_dim() -> None:
    base = VariantScores(alpha=0, input_format="plain", ndcg_at_10={384: 0.6, 64: 0.5})
    worse_at_384 = VariantScores(alpha=1, input_format="gecko", ndcg_at_10={384: 0.59, 64: 0.9})
    chosen, improved = choose_variant(base, [worse_at_384])
    assert not improved and chosen is worse_at_384
    tie = VariantScores(alpha=0.7, input_format="gecko", ndcg_at_10={384: 0.6, 64: 0.6})
    assert choose_variant(base, [tie])[1] is False  # equal is not better


def test_holdout_is_stable_and_disjoint(pydoc_passages) -> None:
    examples = flipped_labels(pydoc_passages, 60, SelfCheckConfig())
    config = SelfCheckConfig(holdout_fraction=0.3, min_holdout=4)
    train_a, held_a = holdout_split(examples, config)
    train_b, held_b = holdout_split(list(reversed(examples)), config)
    assert {e.id for e in held_a} == {e.id for e in held_b} and len(held_a) == 18
    assert not {e.id for e in held_a} & {e.id for e in train_a}
    assert holdout_split(examples, SelfCheckConfig(holdout_fraction=0.0))[1] == []
    assert holdout_split(examples[:20], SelfCheckConfig())[1] == []  # 2 held out < min_holdout: no check


def test_noise_is_not_a_gain() -> None:
    base = VariantScores(alpha=0, input_format="plain", ndcg_at_10={64: 0.1}, per_query={64: [0, 0, 0.5, 0, 0]})
    lucky = VariantScores(alpha=1, input_format="gecko", ndcg_at_10={64: 0.2}, per_query={64: [0, 0, 0, 1.0, 0]})
    assert lucky.gains(base) == {64: 0.1} and not lucky.beats(base)
    steady = VariantScores(alpha=1, input_format="gecko", ndcg_at_10={64: 0.2}, per_query={64: [0.1, 0.1, 0.6, 0.1, 0.1]})
    assert steady.beats(base)


def test_a_wrong_teacher_never_ships_a_worse_model_silently(pydoc_passages, embedder, tmp_path: Path, caplog) -> None:
    check_config = SelfCheckConfig(holdout_fraction=0.25, min_holdout=8)
    examples = flipped_labels(pydoc_passages, 64, check_config)
    config = TrainConfig(epochs=2, batch_size=16, learning_rate=3e-4, matryoshka_dims=(384, 64), self_check=check_config)
    out = train(examples, output_dir=tmp_path / "model", config=config)
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    check = provenance["self_check"]
    assert check["status"] == "no_gain" and check["holdout_queries"] == 16, check
    assert check["base"]["ndcg_at_10"]["384"] > 0.8  # the base finds the true passages
    assert "NOT BETTER THAN ITS BASE" in caplog.text and "Saving the BASE MODEL unchanged" in caplog.text
    assert "Self-check:" in (out / "README.md").read_text()
    texts = ["how do I format a string", "the with statement and context managers"]
    assert check["saved"] == "base" and provenance["query_format"] == "plain"
    np.testing.assert_allclose(
        load_model(out).encode(texts, normalize_embeddings=True), embedder.encode(texts, normalize_embeddings=True), atol=1e-5
    )


def test_a_noisy_loss_at_one_dim_is_tolerated_but_a_real_one_is_not() -> None:
    base = VariantScores(
        alpha=0,
        input_format="plain",
        ndcg_at_10={384: 0.5, 64: 0.4},
        per_query={384: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 64: [0.4] * 6},
    )
    noisy = VariantScores(
        alpha=0.4,
        input_format="plain",
        ndcg_at_10={384: 0.48, 64: 0.6},
        per_query={384: [0.6, 0.3, 0.6, 0.35, 0.5, 0.53], 64: [0.6, 0.55, 0.65, 0.6, 0.6, 0.6]},
    )
    assert noisy.gains(base)[384] < 0 and noisy.beats(base)
    real = VariantScores(
        alpha=1.0, input_format="plain", ndcg_at_10={384: 0.4, 64: 0.8}, per_query={384: [0.4] * 6, 64: [0.8] * 6}
    )
    assert not real.beats(base)  # the same loss on every query is no noise
