"""Local LLM through Hugging Face transformers: any model folder, hub id, or GGUF file.

GGUF files are dequantised by transformers (needs ``gguf``), which takes about a minute for
gemma-3-270m; the dequantised weights are then cached on disk (safetensors) under
``<cache_dir>/dequantised/`` so later loads take seconds.

Scoring is batched with left padding and explicit position ids (so padding never changes a
score), and only the logits at the positions that are needed are computed
(``logits_to_keep``): with gemma-3's 262k vocabulary, full logits would not fit in memory.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._lazy import require
from ..paths import cache_dir as default_cache_dir
from .base import Generation, GenerationRequest, Score, ScoreRequest

__all__ = ["TransformersLLM", "gguf_backend_name"]

logger = logging.getLogger(__name__)


class TransformersLLM:
    """A causal LM run locally with transformers (CPU fp32, or CUDA bf16 when present).

    Args:
        model: A model folder, a hub id (needs network), or a ``.gguf`` file.
        batch_size: Requests per forward pass.
        max_length: Longer inputs are cut from the left of the context (logged).
        device: ``"cpu"``, ``"cuda"``… Default: CUDA if available.
        cache_dir: Where dequantised GGUF weights are kept. Default:
            ``$GECKO_DISTILL_CACHE`` or ``~/.cache/gecko_distill``.
        chat: Wrap each generation prompt as one user turn of the tokenizer's chat template
            (for instruction-tuned models such as SmolLM2-Instruct). Scoring is never wrapped.

    Example:
        >>> from gecko_distill.llm import TransformersLLM, ScoreRequest  # doctest: +SKIP
        >>> llm = TransformersLLM("path/to/model.gguf")  # doctest: +SKIP
        >>> llm.score([ScoreRequest(context="Paris is the capital of", continuation=" France")])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 8,
        max_length: int = 2048,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        chat: bool = False,
    ):
        torch = require("torch", "gecko-distill")
        transformers = require("transformers", "gecko-distill")
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        source = Path(model)
        if source.suffix == ".gguf":
            folder, self._name = _dequantised(source, Path(cache_dir) if cache_dir else default_cache_dir())
        else:
            folder, self._name = str(model), f"transformers:{source.name if source.exists() else model}"
        logger.info("loading %s on %s", folder, self.device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"chat=True, but the tokenizer of {folder} has no chat template")
        self.chat = chat
        if chat:
            self._name += "+chat"
        self._torch = torch
        self._warned_multi_token: set[str] = set()

    @property
    def name(self) -> str:
        return self._name

    # -- scoring -----------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        encoded = [self._encode_score(r) for r in requests]
        results: list[Score | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]["ids"]))  # length buckets
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            for i, score in zip(batch, self._score_batch([encoded[i] for i in batch])):
                results[i] = score
        return results  # type: ignore[return-value]

    def _encode_score(self, request: ScoreRequest) -> dict[str, Any]:
        tok = self.tokenizer
        context = tok(request.context, add_special_tokens=True).input_ids
        continuation = tok(request.continuation, add_special_tokens=False).input_ids if request.continuation else []
        suffix = tok(request.suffix, add_special_tokens=False).input_ids if request.suffix else []
        choices = [self._first_token(c) for c in request.choices]
        overflow = len(context) + len(continuation) + len(suffix) - self.max_length
        if overflow > 0:
            logger.warning("score input is %d tokens over max_length=%d; cutting the context", overflow, self.max_length)
            context = context[:1] + context[1 + overflow :]
        return {"ids": context + continuation + suffix, "n_cont": len(continuation), "n_suffix": len(suffix), "choices": choices}

    def _first_token(self, choice: str) -> int:
        ids = self.tokenizer(choice, add_special_tokens=False).input_ids
        if len(ids) != 1 and choice not in self._warned_multi_token:
            self._warned_multi_token.add(choice)
            logger.warning("choice %r is %d tokens; its first token stands for it", choice, len(ids))
        return ids[0]

    def _score_batch(self, items: list[dict[str, Any]]) -> list[Score]:
        torch = self._torch
        input_ids, attention_mask = self._left_pad([it["ids"] for it in items])
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        # Logits are needed from the token before the continuation up to the last position.
        keep = max(it["n_cont"] + it["n_suffix"] + 1 for it in items)
        with torch.inference_mode():
            logits = self.model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=keep
            ).logits.float()  # [batch, keep, vocab]
            log_norm = torch.logsumexp(logits, dim=-1)  # [batch, keep]
            total = input_ids.shape[1]
            scores = []
            for row, it in enumerate(items):
                n_cont, n_suffix = it["n_cont"], it["n_suffix"]
                logprob = 0.0
                if n_cont:
                    # token at absolute position j is predicted by the logits at j - 1
                    targets = input_ids[row, total - n_suffix - n_cont : total - n_suffix]
                    first = keep - 1 - n_suffix - n_cont
                    rows = logits[row, first : first + n_cont]
                    picked = rows.gather(-1, targets[:, None]).squeeze(-1) - log_norm[row, first : first + n_cont]
                    logprob = float(picked.sum())
                choice_lp = tuple(float(logits[row, -1, c] - log_norm[row, -1]) for c in it["choices"])
                scores.append(
                    Score(logprob=logprob, num_tokens=n_cont, choice_logprobs=choice_lp, prompt_tokens=len(it["ids"]))
                )
        return scores

    def _left_pad(self, sequences: list[list[int]]):
        torch = self._torch
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- generation --------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        # Requests that share decoding settings are batched together.
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, r.temperature, r.stop), []).append(i)
        for indices in groups.values():
            indices.sort(key=lambda i: len(requests[i].prompt))
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                for i, gen in zip(batch, self._generate_batch([requests[i] for i in batch])):
                    results[i] = gen
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[Generation]:
        torch = self._torch
        first = batch[0]
        sequences = [self._prompt_ids(r.prompt)[-self.max_length :] for r in batch]
        input_ids, attention_mask = self._left_pad(sequences)
        kwargs: dict[str, Any] = {"max_new_tokens": first.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if first.temperature > 0:
            seed = int(hashlib.sha256(repr([(r.prompt, r.sample_index) for r in batch]).encode()).hexdigest()[:8], 16)
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.stop:
            kwargs.update(stop_strings=list(first.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        new_tokens = output[:, input_ids.shape[1] :]
        results = []
        for row, request in enumerate(batch):
            tokens = [t for t in new_tokens[row].tolist() if t != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            for stop in request.stop:
                text = text.split(stop, 1)[0]
            results.append(Generation(text=text, prompt_tokens=len(sequences[row]), completion_tokens=len(tokens)))
        return results


    def _prompt_ids(self, prompt: str) -> list[int]:
        if not self.chat:
            return self.tokenizer(prompt, add_special_tokens=True).input_ids
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False).input_ids


def _dequantised(gguf_path: Path, cache_root: Path) -> tuple[str, str]:
    """Return (folder of dequantised weights, backend name); build the folder on first use."""
    name = gguf_backend_name(gguf_path)
    digest = name.rsplit("@", 1)[1]
    folder = cache_root / "dequantised" / f"{gguf_path.stem}-{digest}"
    if (folder / "config.json").exists():
        return str(folder), name
    require("gguf", "gecko-distill[offline]")
    transformers = require("transformers", "gecko-distill")
    logger.info("dequantising %s once (about a minute); cached in %s", gguf_path.name, folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are plain tensors now; drop the GGUF marker that blocks save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return str(folder), name


def gguf_backend_name(gguf_path: Path) -> str:
    """The backend name of a GGUF model: file name plus the start of its sha256."""
    if not gguf_path.exists():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    return f"transformers:{gguf_path.name}@{_sha256(gguf_path)[:12]}"


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
