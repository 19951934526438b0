"""A folder refused as stale names the settings that changed (``retrieve.top_n: 4 → 3``), not two
hashes; and the FRet and synth folders' manifests record the run's environment (issue 14, parts
5 and 7)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from test_synth import ONE, canned

from gecko_distill import FRetConfig, RetrieveConfig, StaleOutputError, build_fret
from gecko_distill.e5.synth import generate_triplets
from gecko_distill.testing import FakeLLM

CONFIG = FRetConfig(retrieve=RetrieveConfig(top_n=4))


@pytest.fixture(scope="module")
def built(pydoc_passages, embedder, tmp_path_factory) -> tuple[list[str], Path]:
    """A finished FRet folder of six passages."""
    texts = [p.text for p in pydoc_passages[:6]]
    out = tmp_path_factory.mktemp("fret") / "run"
    build_fret(texts, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    return texts, out


def test_the_fret_manifest_records_the_environment_and_each_stage_its_settings(built) -> None:
    _, out = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["environment"]["versions"]["torch"] == metadata.version("torch")
    assert manifest["environment"]["created_utc"].endswith("Z") and manifest["environment"]["command"]
    relabel = json.loads((out / "relabel" / "manifest.json").read_text())["settings"]
    assert relabel["retrieve"]["top_n"] == 4 and relabel["teacher"] == "fake-llm" and relabel["ranker"] == "fake-llm"
    assert relabel["corpus"].startswith("6 passages, fingerprint ")


def test_a_changed_setting_is_named_in_the_refusal(built, embedder) -> None:
    texts, out = built
    changed = FRetConfig(retrieve=RetrieveConfig(top_n=3))
    with pytest.raises(
        StaleOutputError,
        match=r"'retrieve' stage output, because it was written with other settings "
        r"\(retrieve\.top_n: 4 → 3\)\. Use a new output folder",
    ):
        build_fret(texts, llm=FakeLLM(), embedder=embedder, config=changed, output_dir=out)
    with pytest.raises(
        StaleOutputError,
        match=r"'generate' stage output, because it was written with other settings "
        r"\(teacher: fake-llm → other\)",
    ):
        build_fret(texts, llm=FakeLLM(name="other"), embedder=embedder, config=CONFIG, output_dir=out)
    with pytest.raises(StaleOutputError, match=r"'generate' stage .* \(corpus: 6 passages, fingerprint \w{12} → 5 passages"):
        build_fret(texts[:5], llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)


def test_the_synth_manifest_records_the_environment_and_a_change_is_named(tmp_path: Path) -> None:
    generate_triplets(FakeLLM(replies=canned()), ONE, output_dir=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["environment"]["versions"]["transformers"] == metadata.version("transformers")
    more = ONE.model_copy(update={"triplets_per_task": 2})
    with pytest.raises(
        StaleOutputError,
        match=r"'triplets' stage output, because it was written with other settings "
        r"\(synth\.triplets_per_task: 1 → 2\)",
    ):
        generate_triplets(FakeLLM(), more, output_dir=tmp_path)
    hotter = ONE.model_copy(update={"temperature": 0.9})
    with pytest.raises(StaleOutputError, match=r"'brainstorm' stage .* \(brainstorm\.temperature: [\d.]+ → 0\.9\)"):
        generate_triplets(FakeLLM(), hotter, output_dir=tmp_path)
