"""Gecko's round 1: the miner is fine-tuned on (query, seed) pairs, then mines (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gecko_distill import FRetConfig, RetrieveConfig, Round1Config, build_fret
from gecko_distill.errors import StaleOutputError
from gecko_distill.testing import FakeLLM


def config(**round1) -> FRetConfig:
    return FRetConfig(retrieve=RetrieveConfig(top_n=4), round1=Round1Config(batch_size=4, max_seq_length=64, **round1))


@pytest.fixture(scope="module")
def passages(pydoc_passages):
    seen, chosen = set(), []
    for p in pydoc_passages:
        if p.title not in seen:
            seen.add(p.title)
            chosen.append(p)
        if len(chosen) == 12:
            return chosen


def test_round1_trains_the_miner_and_a_change_invalidates_what_it_mined(passages, embedder, tmp_path: Path) -> None:
    out = tmp_path / "run"
    fret = build_fret(passages, llm=FakeLLM(), embedder=embedder, config=config(), output_dir=out)
    round1 = fret.stats["round1"]
    assert round1["pairs"] == 12 and "seed_in_top_n_before" in round1 and "seed_in_top_n_after" in round1
    assert (out / "round1" / "gecko_distill.json").is_file() and (out / "round1" / "round1.done").is_file()
    assert fret.stats["retrieve"]["input_format"] == "plain"  # the round-1 miner keeps reading plain text
    again = build_fret(passages, llm=FakeLLM(), embedder=embedder, config=config(), output_dir=out)
    assert again.stats["round1"].get("reused") and [e.model_dump() for e in again] == [e.model_dump() for e in fret]
    with pytest.raises(StaleOutputError, match="'retrieve'"):
        build_fret(passages, llm=FakeLLM(), embedder=embedder, config=config(learning_rate=1e-4), output_dir=out)


def test_round1_is_skipped_when_there_are_too_few_seeds(passages, embedder) -> None:
    fret = build_fret(
        passages[:6], llm=FakeLLM(), embedder=embedder, config=FRetConfig(retrieve=RetrieveConfig(top_n=4))
    )  # 6 seeds < 2 batches of 32
    assert "too few distinct seeds" in fret.stats["round1"]["skipped"]
