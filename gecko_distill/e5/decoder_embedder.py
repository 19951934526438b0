"""A decoder LLM as the embedder (E5-mistral): append EOS, pool the last token, train LoRA adapters.

Wang et al. (2024) fine-tune Mistral-7B as an embedder: the input gets an ``</s>`` token, the
hidden state of that last token is the embedding, LoRA adapters (rank 16) are the only trained
weights, and the loss is InfoNCE at temperature 0.02 over in-batch and hard negatives.

Here the whole recipe is an ordinary sentence-transformers model, so
:func:`gecko_distill.embedder.train.train`, :mod:`gecko_distill.embedder.evaluate` and
:mod:`gecko_distill.embedder.encoding` use it unchanged:

* a ``Transformer`` module on the causal LM, for plain text only (no chat template), whose
  tokenizer appends the EOS token to every input (kept by truncation, and saved with the model);
* ``Pooling(pooling_mode="lasttoken")``: the last non-padding token, EOS;
* LoRA adapters added with ``SentenceTransformer.add_adapter`` (``peft``), merged into the
  base weights when the model is saved (:class:`DecoderEmbedder`), so that the saved folder is
  a self-contained sentence-transformers model: ``SentenceTransformer(folder)`` loads it
  anywhere, with no reference to the base model's folder and no ``peft``;
* InfoNCE at ``temperature`` is ``MultipleNegativesRankingLoss(scale=1 / temperature)``
  with query-to-document directions only: :func:`decoder_train_config`.

Needs the optional extra: ``pip install 'gecko-distill[decoder]'`` (``peft``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sentence_transformers import SentenceTransformer

from .._lazy import require
from ..errors import InputError

__all__ = [
    "DecoderEmbedderConfig",
    "DecoderEmbedder",
    "decoder_embedder",
    "append_eos",
    "decoder_train_config",
    "resolve_causal_lm",
    "save_merged",
]

logger = logging.getLogger(__name__)

_INSTALL = "gecko-distill[decoder]"


class DecoderEmbedderConfig(BaseModel):
    """Settings of :func:`decoder_embedder`; the defaults are the paper's.

    Attributes:
        max_seq_length: Token limit of an input, EOS included.
        lora: Train LoRA adapters only (``False``: every weight is trained).
        lora_rank: LoRA rank ``r``.
        lora_alpha: LoRA scaling ``alpha``.
        lora_dropout: Dropout on the LoRA input.
        target_modules: Layers that get adapters: ``"all-linear"`` or module names such as
            ``("q_proj", "v_proj")``.
        temperature: InfoNCE temperature, used by :func:`decoder_train_config`.
        dtype: Weights' dtype: ``"float32"`` (CPU) or ``"bfloat16"`` (GPU).
        merge_on_save: Save the model with the LoRA adapters merged into the base weights (a
            self-contained folder of the full model). ``False`` saves the adapters only (small,
            but the folder refers to the base model's folder by its absolute path).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_seq_length: int = Field(default=512, ge=8)
    lora: bool = True
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    target_modules: Literal["all-linear"] | tuple[str, ...] = "all-linear"
    temperature: float = Field(default=0.02, gt=0.0)
    dtype: Literal["float32", "bfloat16"] = "float32"
    merge_on_save: bool = True


def resolve_causal_lm(model: str | Path) -> str:
    """A local folder of a causal LM: an offline model name (``"smollm2-135m"``,
    ``"gemma3-270m"``) or a ``.gguf`` file is dequantised once into the user cache.

    Raises:
        InputError: ``model`` is neither a known name nor an existing file or folder.

    Example:
        >>> resolve_causal_lm("smollm2-135m")  # doctest: +SKIP
        '/root/.cache/gecko_distill/dequantised/SmolLM2-135M-Instruct.Q4_1-b179c9523d0e'
    """
    from ..llm.registry import OFFLINE_MODELS, offline_gguf_path
    from ..llm.transformers_backend import _dequantised
    from ..paths import cache_dir

    path = offline_gguf_path(str(model)) if str(model) in OFFLINE_MODELS else Path(model)
    if not path.exists():
        raise InputError(f"{model}: not an offline model name ({sorted(OFFLINE_MODELS)}), a .gguf file or a model folder")
    if path.suffix == ".gguf":
        folder = _dequantised(path, cache_dir())
        return folder
    return str(path)


def append_eos(tokenizer: Any) -> None:
    """Make a fast tokenizer end every input with its EOS token (after its BOS, if it adds one).

    The rule lives in the tokenizer's post-processor, so truncation keeps the EOS, and it is
    saved with the tokenizer.

    Raises:
        InputError: The tokenizer has no EOS token or is not a fast tokenizer.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> tok = AutoTokenizer.from_pretrained(resolve_causal_lm("smollm2-135m"))  # doctest: +SKIP
        >>> append_eos(tok); tok("hi").input_ids[-1] == tok.eos_token_id  # doctest: +SKIP
        True
    """
    processors = require("tokenizers.processors", "tokenizers")
    backend = getattr(tokenizer, "_tokenizer", None)
    if tokenizer.eos_token is None or backend is None:
        raise InputError(f"{type(tokenizer).__name__}: last-token pooling needs a fast tokenizer with an EOS token")
    with_special = tokenizer("a").input_ids
    adds_bos = tokenizer.bos_token_id is not None and with_special[:1] == [tokenizer.bos_token_id]
    bos = f"{tokenizer.bos_token}:0 " if adds_bos else ""
    eos = tokenizer.eos_token
    special = [(eos, tokenizer.eos_token_id)] + ([(tokenizer.bos_token, tokenizer.bos_token_id)] if adds_bos else [])
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}$A:0 {eos}:0", pair=f"{bos}$A:0 {eos}:0 $B:1 {eos}:1", special_tokens=special
    )


class DecoderEmbedder(SentenceTransformer):
    """The ``SentenceTransformer`` that :func:`decoder_embedder` returns: saved (``save``,
    ``save_pretrained``, and so :func:`gecko_distill.embedder.train.train`) with its LoRA adapters
    merged (:func:`save_merged`) while ``merge_on_save`` is set. It is an ordinary
    ``SentenceTransformer`` otherwise, and its saved folder loads as one.
    """

    #: Set from :attr:`DecoderEmbedderConfig.merge_on_save`.
    merge_on_save: bool = True

    def save(self, path: str, *args: Any, **kwargs: Any) -> None:
        if self.merge_on_save and _has_adapters(self):
            save_merged(self, path, *args, **kwargs)
        else:
            super().save(path, *args, **kwargs)


def save_merged(model: Any, path: str | Path, *args: Any, **kwargs: Any) -> None:
    """Save a ``SentenceTransformer`` whose first module carries LoRA adapters as a
    self-contained model: the adapters are merged into the base weights of the saved copy
    (``W + scale * B @ A``); the model in memory keeps its adapters, unchanged.

    The merged weights are built on the CPU: saving takes CPU memory for a copy of the adapted
    layers, and no accelerator memory.

    Args:
        model: The model; other positional and keyword arguments go to
            ``SentenceTransformer.save``.
        path: The output folder.

    Raises:
        InputError: The adapters are not plain LoRA (e.g. DoRA), which this merge does not
            cover: save with ``merge_on_save=False`` instead.

    Example:
        >>> model = decoder_embedder("smollm2-135m", DecoderEmbedderConfig(max_seq_length=64))  # doctest: +SKIP
        >>> save_merged(model, "out/model")  # doctest: +SKIP
        >>> SentenceTransformer("out/model")  # no peft needed, no base-model path  # doctest: +SKIP
    """
    transformer = model[0]
    auto_model = transformer.auto_model
    merged = _merged_state_dict(auto_model)
    SentenceTransformer.save(model, str(path), *args, **kwargs)
    folder = Path(path) if getattr(transformer, "save_in_root", False) else Path(path) / f"0_{type(transformer).__name__}"
    loaded = getattr(auto_model, "_hf_peft_config_loaded", False)
    auto_model._hf_peft_config_loaded = False  # save_pretrained then writes full weights and config.json
    try:
        auto_model.save_pretrained(str(folder), state_dict=merged, safe_serialization=kwargs.get("safe_serialization", True))
    finally:
        auto_model._hf_peft_config_loaded = loaded
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        (folder / name).unlink(missing_ok=True)
    logger.info("saved %s with its LoRA adapters merged", path)


def _has_adapters(model: Any) -> bool:
    return bool(getattr(model[0].auto_model, "_hf_peft_config_loaded", False))


def _merged_state_dict(auto_model: Any) -> dict[str, Any]:
    """The base model's state dict (adapter weights out, ``base_layer`` names undone) with each
    LoRA layer's active adapters added to its weight, on the CPU."""
    lora = require("peft.tuners.lora", _INSTALL)
    torch = require("torch", "torch")
    state = auto_model.state_dict()
    merged: dict[str, Any] = {}
    for key, value in state.items():
        if "lora_" not in key:
            merged[key.replace(".base_layer.", ".")] = value
    with torch.no_grad():
        for name, module in auto_model.named_modules():
            if not isinstance(module, lora.LoraLayer):
                continue
            active = [a for a in module.active_adapters if a in module.lora_A or a in module.lora_embedding_A]
            if any(module.use_dora.get(a, False) for a in active):
                raise InputError(f"{name}: DoRA adapters are not merged on save; use DecoderEmbedderConfig(merge_on_save=False)")
            weight = state[f"{name}.base_layer.weight"].detach().to("cpu", copy=True)
            for adapter in active:
                weight += module.get_delta_weight(adapter).detach().to("cpu", weight.dtype)
            merged[f"{name}.weight"] = weight
    return merged


def decoder_embedder(model: str | Path, config: DecoderEmbedderConfig | None = None, *, device: str | None = None) -> Any:
    """A sentence-transformers embedder on a decoder LLM: EOS appended, last-token pooling,
    LoRA adapters.

    Args:
        model: A causal-LM folder, a ``.gguf`` file, or an offline model name
            (``"smollm2-135m"``, ``"gemma3-270m"``).
        config: Settings; default :class:`DecoderEmbedderConfig()`.
        device: ``"cpu"``, ``"cuda"``…; ``None`` lets sentence-transformers pick.

    Returns:
        A :class:`DecoderEmbedder` (a ``SentenceTransformer``); pass it to
        ``train(..., base_model=model)`` with :func:`decoder_train_config`. Saved, with its
        adapters merged by default, it reloads anywhere with ``SentenceTransformer(folder)``.

    Raises:
        MissingDependencyError: ``peft`` is not installed and ``config.lora`` is set.

    Example:
        >>> model = decoder_embedder("smollm2-135m", DecoderEmbedderConfig(max_seq_length=64))  # doctest: +SKIP
        >>> model.encode(["Instruct: Retrieve parallel sentences.\\nQuery: Le chat dort."]).shape  # doctest: +SKIP
        (1, 576)
    """
    config = config or DecoderEmbedderConfig()
    peft = require("peft", _INSTALL) if config.lora else None
    modules = require("sentence_transformers.sentence_transformer.modules", "sentence-transformers>=6")
    torch = require("torch", "torch")
    folder = resolve_causal_lm(model)
    transformer = modules.Transformer(
        folder,
        max_seq_length=config.max_seq_length,
        model_kwargs={"dtype": getattr(torch, config.dtype)},
        # Plain text only: with a "message" modality, sentence-transformers would wrap every input
        # in the model's chat template, and the last token would no longer be the EOS.
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    tokenizer = transformer.tokenizer
    append_eos(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pooling = modules.Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    embedder = DecoderEmbedder(modules=[transformer, pooling], device=device)
    embedder.merge_on_save = config.merge_on_save
    if peft is not None:
        target = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
        embedder.add_adapter(
            peft.LoraConfig(
                task_type="FEATURE_EXTRACTION",
                r=config.lora_rank,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=target,
            )
        )
    trainable = sum(p.numel() for p in embedder.parameters() if p.requires_grad)
    total = sum(p.numel() for p in embedder.parameters())
    logger.info("decoder embedder on %s: %d of %d weights trainable", folder, trainable, total)
    return embedder


def decoder_train_config(embedder: Any, config: DecoderEmbedderConfig | None = None, **settings: Any) -> Any:
    """A :class:`~gecko_distill.embedder.train.TrainConfig` for the E5-mistral loss: InfoNCE
    (query-to-document, in-batch and hard negatives) at ``config.temperature``, at the full
    dimension only (no Matryoshka), with the embedder's ``max_seq_length``.

    Args:
        embedder: The model from :func:`decoder_embedder`.
        config: The settings it was built with.
        **settings: Other ``TrainConfig`` fields (``max_steps``, ``batch_size``,
            ``learning_rate``, ``mix_ratios``…); they may not override the loss.

    Example:
        >>> class Stub:  # anything with get_embedding_dimension and max_seq_length
        ...     max_seq_length = 64
        ...     def get_embedding_dimension(self): return 576
        >>> cfg = decoder_train_config(Stub(), max_steps=2, batch_size=4)
        >>> cfg.scale, cfg.loss_directions, cfg.matryoshka_dims, cfg.max_seq_length
        (50.0, 'infonce', (576,), 64)
    """
    from ..embedder.encoding import embedding_dimension
    from ..embedder.train import TrainConfig

    config = config or DecoderEmbedderConfig()
    fixed = {"scale", "loss_directions", "matryoshka_dims"}
    if fixed & set(settings):
        raise InputError(f"decoder_train_config sets {sorted(fixed)} itself; change DecoderEmbedderConfig.temperature instead")
    settings.setdefault("max_seq_length", embedder.max_seq_length)
    return TrainConfig(
        scale=1.0 / config.temperature,
        loss_directions="infonce",
        matryoshka_dims=(embedding_dimension(embedder),),
        **settings,
    )
