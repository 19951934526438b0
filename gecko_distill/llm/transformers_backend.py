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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._lazy import require
from ..errors import GeckoDistillError
from ..paths import cache_dir as default_cache_dir
from .base import Generation, GenerationRequest, Score, ScoreRequest

__all__ = ["TransformersLLM", "gguf_backend_name", "ChoiceTokenError", "resolve_dtype", "cpu_supports_bf16", "backend_name"]

logger = logging.getLogger(__name__)

#: Text put before a choice to tokenize it as it appears after other text (see
#: :meth:`TransformersLLM.choice_token_ids`); every tokenizer splits at a newline.
_CHOICE_ANCHOR = "\n"


class ChoiceTokenError(GeckoDistillError, ValueError):
    """Two choices start with the same token, so their log-probabilities would always be
    equal (relevance would tie for every candidate)."""


class TransformersLLM:
    """A causal LM run locally with transformers (bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere).

    Args:
        model: A model folder, a hub id (needs network), or a ``.gguf`` file.
        batch_size: At most this many sequences per forward pass.
        batch_tokens: At most this many (padded) tokens per forward pass.
        share_prefixes: Score requests that share a long token prefix (the same passage
            read for several queries) by running the prefix once and reusing its KV cache.
            Scores are unchanged; it only saves work.
        min_shared_prefix: Shortest shared prefix, in tokens, worth a separate pass.
        max_padding: Largest share of padding in a batch. On a CPU a single sequence already
            keeps the matrix units busy, so padding is pure waste; length-sorted requests
            still form full batches within a small tolerance.
        max_length: Longer inputs are cut from the left of the context (logged).
        device: ``"cpu"``, ``"cuda"``… Default: CUDA if available.
        cache_dir: Where dequantised GGUF weights are kept. Default:
            ``$GECKO_DISTILL_CACHE`` or ``~/.cache/gecko_distill``.
        chat: Wrap each generation prompt as one user turn of the tokenizer's chat template
            (for instruction-tuned models such as SmolLM2-Instruct). Scoring is never wrapped.
        dtype: ``"auto"`` (bf16 on CUDA and on CPUs with native bf16 instructions, AVX512-BF16
            or AMX; fp32 elsewhere), ``"bfloat16"`` or ``"float32"``. Decoding on a CPU is bound
            by memory traffic, so bf16 roughly halves it (measured 3-4x faster scoring with
            AVX512-BF16, see ``docs/benchmarks.md``). A precision other than fp32 is part of
            :attr:`name`, so caches and fingerprints never mix answers of two precisions.

    Example:
        >>> from gecko_distill.llm import TransformersLLM, ScoreRequest  # doctest: +SKIP
        >>> llm = TransformersLLM("path/to/model.gguf")  # doctest: +SKIP
        >>> llm.score([ScoreRequest(context="Paris is the capital of", continuation=" France")])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 64,
        batch_tokens: int = 4096,
        share_prefixes: bool = True,
        min_shared_prefix: int = 32,
        max_padding: float = 0.1,
        max_length: int = 2048,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        chat: bool = False,
        dtype: str = "auto",
    ):
        torch = require("torch", "gecko-distill")
        transformers = require("transformers", "gecko-distill")
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.share_prefixes = share_prefixes
        self.min_shared_prefix = min_shared_prefix
        self.max_padding = max_padding
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(dtype, self.device)
        source = Path(model)
        if source.suffix == ".gguf":
            folder = _dequantised(source, Path(cache_dir) if cache_dir else default_cache_dir(), self.dtype)
            base_name = gguf_backend_name(source)
        else:
            folder, base_name = str(model), f"transformers:{source.name if source.exists() else model}"
        self._name = backend_name(base_name, self.dtype, chat=chat)
        logger.info("loading %s on %s in %s", folder, self.device, self.dtype)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        self.model = (
            transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, self.dtype)).to(self.device).eval()
        )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"chat=True, but the tokenizer of {folder} has no chat template")
        self.chat = chat
        self._torch = torch
        self._warned_multi_token: set[str] = set()
        self._choice_ids: dict[tuple[str, ...], list[int]] = {}
        self._decoder = self.model.get_decoder()
        # With sliding-window attention, padding counts towards the window: batches are kept
        # within it so that padding never changes a score.
        self._window = (getattr(self.model.config, "sliding_window", None) or max_length + 1) - 1
        #: Work done so far, for benchmarks: forward passes, tokens fed (padded and real),
        #: and positions that went through the output head.
        self.counters = {"forward_passes": 0, "forward_tokens": 0, "real_tokens": 0, "head_positions": 0}

    @property
    def name(self) -> str:
        return self._name

    # -- scoring -----------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        encoded = [self._encode_score(r) for r in requests]
        results: list[Score | None] = [None] * len(requests)
        groups = _prefix_groups(encoded, self.min_shared_prefix, self._window) if self.share_prefixes else []
        grouped = {i for _, members in groups for i in members}
        singles = sorted((i for i in range(len(encoded)) if i not in grouped), key=lambda i: len(encoded[i]["ids"]))
        for batch in _batches(singles, lambda b: self._fits_scoring([len(encoded[i]["ids"]) for i in b])):
            for i, score in zip(batch, self._score_batch([encoded[i] for i in batch])):
                results[i] = score
        groups.sort(key=lambda g: g[0])
        for batch in _batches(groups, lambda b: self._fits_shared(b, encoded)):
            members = [i for _, group in batch for i in group]
            for i, score in zip(members, self._score_shared(batch, encoded)):
                results[i] = score
        return results  # type: ignore[return-value]

    def _within(self, lengths: list[int], *, tokens: int | None = None, padding: float | None = None) -> bool:
        """A left-padded batch of these lengths stays within the row and token budgets (and
        the padding limit, when one is given)."""
        rows, width = len(lengths), max(lengths)
        return (
            rows <= self.batch_size
            and rows * width <= (tokens or self.batch_tokens)
            and (padding is None or rows * width - sum(lengths) <= padding * rows * width)
        )

    def _fits_scoring(self, lengths: list[int]) -> bool:
        """Within budget, and within the attention window unless all rows have the same
        length (so that padding never changes a score)."""
        return self._within(lengths, padding=self.max_padding) and (max(lengths) <= self._window or min(lengths) == max(lengths))

    def _fits_generation(self, lengths: list[int]) -> bool:
        """Decoding reads every weight once per step whatever the batch, so on a CPU it is
        bound by memory traffic (gemma-3's 262k-row output head alone is 670 MB in fp32):
        generation batches are as wide as the row budget allows, with a larger token budget
        for the prompt pass and no padding limit."""
        return self._within(lengths, tokens=4 * self.batch_tokens)

    def _fits_shared(self, groups: list[tuple[int, list[int]]], encoded: list[dict[str, Any]]) -> bool:
        """The prefixes and the tails each fit a batch, and together the attention window."""
        prefixes = [length for length, _ in groups]
        tails = [len(encoded[i]["ids"]) - length for length, members in groups for i in members]
        return (
            self._within(prefixes, padding=self.max_padding)
            and self._within(tails)
            and max(prefixes) + max(tails) <= self._window
        )

    def _encode_score(self, request: ScoreRequest) -> dict[str, Any]:
        tok = self.tokenizer
        context = tok(request.context, add_special_tokens=True).input_ids
        continuation = tok(request.continuation, add_special_tokens=False).input_ids if request.continuation else []
        suffix = tok(request.suffix, add_special_tokens=False).input_ids if request.suffix else []
        choices = self.choice_token_ids(request.choices) if request.choices else []
        overflow = len(context) + len(continuation) + len(suffix) - self.max_length
        if overflow > 0:
            logger.warning("score input is %d tokens over max_length=%d; cutting the context", overflow, self.max_length)
            context = context[:1] + context[1 + overflow :]
        return {"ids": context + continuation + suffix, "n_cont": len(continuation), "n_suffix": len(suffix), "choices": choices}

    def choice_token_ids(self, choices: Sequence[str]) -> list[int]:
        """The token whose log-probability stands for each choice: the first token of the
        choice as it is tokenized after other text.

        SentencePiece tokenizers that add a dummy prefix (Llama-2, Mistral v0.1) encode
        ``" Yes"`` on its own as ``["▁", "▁Yes"]`` and ``" No"`` as ``["▁", "▁No"]``: the first
        tokens would be the same, and relevance would tie for every candidate. After other text
        the choice is ``["▁Yes"]``, which is what the model reads and predicts.

        Raises:
            ChoiceTokenError: Two choices still start with the same token.

        Example:
            >>> llm.choice_token_ids([" Yes", " No"])  # doctest: +SKIP
            [7925, 1307]
        """
        key = tuple(choices)
        ids = self._choice_ids.get(key)
        if ids is None:
            ids = [self._first_token(c) for c in key]
            for i, a in enumerate(ids):
                for j in range(i + 1, len(ids)):
                    if a == ids[j] and key[i] != key[j]:
                        raise ChoiceTokenError(
                            f"choices {key[i]!r} and {key[j]!r} start with the same token "
                            f"({self.tokenizer.convert_ids_to_tokens(a)!r}, id {a}) in the tokenizer of {self._name}: "
                            "their log-probabilities would always be equal and relevance would tie for every "
                            "candidate; use choices that start with different tokens"
                        )
            self._choice_ids[key] = ids
        return ids

    def _first_token(self, choice: str) -> int:
        ids = self._ids_after_text(choice)
        if len(ids) != 1 and choice not in self._warned_multi_token:
            self._warned_multi_token.add(choice)
            logger.warning("choice %r is %d tokens; its first token stands for it", choice, len(ids))
        return ids[0]

    def _ids_after_text(self, text: str) -> list[int]:
        """Token ids of ``text`` as it is tokenized after other text (no dummy prefix)."""
        tok = self.tokenizer
        anchor = tok(_CHOICE_ANCHOR, add_special_tokens=False).input_ids
        joined = tok(_CHOICE_ANCHOR + text, add_special_tokens=False).input_ids
        if len(joined) > len(anchor) and joined[: len(anchor)] == anchor:
            return joined[len(anchor) :]
        return tok(text, add_special_tokens=False).input_ids  # the anchor merged with the text

    def _score_batch(self, items: list[dict[str, Any]]) -> list[Score]:
        """One left-padded forward pass over whole requests."""
        input_ids, attention_mask = self._left_pad([it["ids"] for it in items])
        with self._torch.inference_mode():
            hidden = self._forward(input_ids, attention_mask, _positions(attention_mask)).last_hidden_state
        return self._read_scores(hidden, input_ids, items)

    def _score_shared(self, groups: list[tuple[int, list[int]]], encoded: list[dict[str, Any]]) -> list[Score]:
        """Requests that share a long token prefix (e.g. the same passage): the prefixes run
        once, and every member's remaining tokens run against a copy of its prefix's KV cache."""
        torch = self._torch
        prefix_ids, prefix_mask = self._left_pad([encoded[members[0]]["ids"][:length] for length, members in groups])
        rows = torch.tensor([g for g, (_, members) in enumerate(groups) for _ in members], device=self.device)
        items = [encoded[i] for _, members in groups for i in members]
        tails = [encoded[i]["ids"][length:] for length, members in groups for i in members]
        tail_ids, tail_mask = self._left_pad(tails)
        with torch.inference_mode():
            cache = self._forward(prefix_ids, prefix_mask, _positions(prefix_mask), use_cache=True).past_key_values
            cache.batch_select_indices(rows)
            mask = torch.cat([prefix_mask[rows], tail_mask], dim=1)
            positions = prefix_mask[rows].sum(-1, keepdim=True) + _positions(tail_mask)
            hidden = self._forward(tail_ids, mask, positions, cache=cache).last_hidden_state
        return self._read_scores(hidden, tail_ids, items)

    def _forward(self, input_ids, attention_mask, position_ids, *, cache=None, use_cache=False):
        """One pass of the decoder (no output head), counted in :attr:`counters`. The mask may
        be longer than ``input_ids`` when a cache holds the earlier positions."""
        self.counters["forward_passes"] += 1
        self.counters["forward_tokens"] += int(input_ids.numel())
        self.counters["real_tokens"] += int(attention_mask[:, -input_ids.shape[1] :].sum())
        return self._decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=use_cache or cache is not None,
        )

    def _read_scores(self, hidden, input_ids, items: list[dict[str, Any]]) -> list[Score]:
        """Log-probabilities at the positions each request needs, and only there: the
        output head runs on those hidden states alone (gemma-3's head has 262k rows)."""
        torch = self._torch
        width = input_ids.shape[1]
        rows, positions, spans = [], [], []
        for row, it in enumerate(items):
            n_cont, n_suffix = it["n_cont"], it["n_suffix"]
            # the token at position j is predicted by the hidden state at j - 1
            first = width - n_suffix - n_cont - 1
            wanted = list(range(first, first + n_cont)) + [width - 1]
            spans.append((len(positions), n_cont))
            rows += [row] * len(wanted)
            positions += wanted
        with torch.inference_mode():
            rows_t = torch.tensor(rows, device=hidden.device)
            positions_t = torch.tensor(positions, device=hidden.device)
            logits = self._head(hidden[rows_t, positions_t]).float()  # [needed, vocab]
            logprobs_norm = torch.logsumexp(logits, dim=-1)
            self.counters["head_positions"] += len(positions)
            scores = []
            for row, (it, (start, n_cont)) in enumerate(zip(items, spans)):
                targets = input_ids[row, width - it["n_suffix"] - n_cont : width - it["n_suffix"]]
                picked = logits[start : start + n_cont].gather(-1, targets[:, None]).squeeze(-1)
                logprob = float((picked - logprobs_norm[start : start + n_cont]).sum()) if n_cont else 0.0
                last = start + n_cont
                choice_lp = tuple(float(logits[last, c] - logprobs_norm[last]) for c in it["choices"])
                scores.append(Score(logprob=logprob, num_tokens=n_cont, choice_logprobs=choice_lp, prompt_tokens=len(it["ids"])))
        return scores

    def _head(self, hidden):
        """The output head, with the logit transforms some architectures apply after it."""
        config = self.model.config
        logits = self.model.get_output_embeddings()(hidden)
        if getattr(config, "logit_scale", None):  # Cohere
            logits = logits * config.logit_scale
        if getattr(config, "logits_scaling", None):  # Granite
            logits = logits / config.logits_scaling
        cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2
        if cap:
            logits = self._torch.tanh(logits / cap) * cap
        return logits

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
        prompts = [self._prompt_ids(r.prompt)[-self.max_length :] for r in requests]
        # Requests that share decoding settings are batched together: those that share a long
        # prefix (the same few-shot examples) around one KV cache of it, the others by length.
        settings: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            settings.setdefault((r.max_new_tokens, r.temperature, r.stop), []).append(i)
        for (max_new_tokens, *_), indices in settings.items():
            encoded = [{"ids": prompts[i], "n_cont": 0, "n_suffix": 0} for i in indices]
            groups = _prefix_groups(encoded, self.min_shared_prefix, self.max_length) if self.share_prefixes else []
            grouped = {m for _, members in groups for m in members}
            singles = sorted(set(range(len(indices))) - grouped, key=lambda m: len(prompts[indices[m]]))
            for shared, members in [*groups, (0, singles)]:
                tails = lambda b: [len(prompts[indices[m]]) - shared + max_new_tokens for m in b]  # noqa: E731
                for batch in _batches(members, lambda b: self._fits_generation(tails(b))):
                    rows = [indices[m] for m in batch]
                    generations = self._generate_batch([requests[i] for i in rows], [prompts[i] for i in rows], shared)
                    for i, gen in zip(rows, generations):
                        results[i] = gen
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[GenerationRequest], sequences: list[list[int]], shared: int) -> list[Generation]:
        """Generate for one batch; the first ``shared`` tokens are the same in every prompt,
        and their KV cache is computed once and copied to every row."""
        torch = self._torch
        first = batch[0]
        tail_ids, tail_mask = self._left_pad([seq[shared:] for seq in sequences])
        input_ids, attention_mask, cache = tail_ids, tail_mask, None
        with torch.inference_mode():
            if shared:
                prefix = torch.tensor([sequences[0][:shared]], device=self.device)
                ones = torch.ones_like(prefix)
                cache = self._forward(prefix, ones, _positions(ones), use_cache=True).past_key_values
                cache.batch_repeat_interleave(len(batch))
                input_ids = torch.cat([prefix.expand(len(batch), -1), tail_ids], dim=1)
                attention_mask = torch.cat([torch.ones_like(input_ids[:, :shared]), tail_mask], dim=1)
        kwargs: dict[str, Any] = {"max_new_tokens": first.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if first.temperature > 0:
            seed = int(hashlib.sha256(repr([(r.prompt, r.sample_index) for r in batch]).encode()).hexdigest()[:8], 16)
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.stop:
            kwargs.update(stop_strings=list(first.stop), tokenizer=self.tokenizer)
        if cache is not None:
            kwargs["past_key_values"] = cache
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


def _prefix_groups(encoded: list[dict[str, Any]], min_shared: int, window: int) -> list[tuple[int, list[int]]]:
    """Groups of two or more requests whose token ids share a prefix of ``min_shared`` tokens
    or more, as (shared length, member indices). The shared part always ends before the first
    position whose log-probabilities are read, and each group fits the attention window."""
    order = sorted(range(len(encoded)), key=lambda i: encoded[i]["ids"])
    groups: list[tuple[int, list[int]]] = []

    def readable_from(i: int) -> int:  # the first position whose hidden state is needed
        it = encoded[i]
        return len(it["ids"]) - it["n_cont"] - it["n_suffix"] - 1

    shared, members = 0, [order[0]] if order else []
    longest = len(encoded[order[0]]["ids"]) if order else 0
    for i in order[1:]:
        first, ids = encoded[members[0]]["ids"], encoded[i]["ids"]
        common = _common_prefix(first, ids, min(readable_from(i), shared if len(members) > 1 else readable_from(members[0])))
        if common >= min_shared and max(longest, len(ids)) <= window:
            shared, members, longest = common, [*members, i], max(longest, len(ids))
            continue
        if len(members) > 1:
            groups.append((shared, members))
        shared, members, longest = 0, [i], len(ids)
    if len(members) > 1:
        groups.append((shared, members))
    return groups


def _positions(mask):
    """Position ids of a left-padded batch: 0, 1, … from each row's first real token."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = 0
    for x, y in zip(a[:limit], b[:limit]):
        if x != y:
            break
        n += 1
    return n


def _batches(items: list, fits: Callable[[list], bool]) -> Iterator[list]:
    """Consecutive runs of ``items``, each as long as ``fits`` allows (at least one item)."""
    batch: list = []
    for item in items:
        if batch and not fits([*batch, item]):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _dequantised(gguf_path: Path, cache_root: Path, dtype: str = "float32") -> str:
    """The folder of ``gguf_path``'s weights dequantised to ``dtype``; built on first use (fp32
    from the GGUF file, other precisions by casting the fp32 folder)."""
    digest = gguf_backend_name(gguf_path).rsplit("@", 1)[1]
    suffix = "" if dtype == "float32" else f"-{_SHORT_DTYPE[dtype]}"
    folder = cache_root / "dequantised" / f"{gguf_path.stem}-{digest}{suffix}"
    if (folder / "config.json").exists():
        return str(folder)
    transformers = require("transformers", "gecko-distill")
    if dtype == "float32":
        from .._quiet import muted_tqdm

        require("gguf", "gecko-distill[offline]")
        logger.info("dequantising %s once (about a minute); cached in %s", gguf_path.name, folder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        with muted_tqdm("transformers.modeling_gguf_pytorch_utils"):  # its per-tensor bar: no library switch reaches it
            model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        # The weights are plain tensors now; drop the GGUF marker that blocks save_pretrained.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    else:
        torch = require("torch", "gecko-distill")
        full = _dequantised(gguf_path, cache_root, "float32")
        logger.info("casting %s to %s once; cached in %s", gguf_path.name, dtype, folder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(full)
        model = transformers.AutoModelForCausalLM.from_pretrained(full, dtype=getattr(torch, dtype))
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return str(folder)


#: Precisions a local model may run in, and their short names (in backend names and folders).
_SHORT_DTYPE = {"float32": "fp32", "bfloat16": "bf16"}

#: CPU flags (as Linux's /proc/cpuinfo names them) that mean native bf16 arithmetic.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_supports_bf16(flags: Iterable[str] | None = None) -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16).

    Read from the CPU's feature flags (``/proc/cpuinfo`` on Linux), never guessed from the CPU
    model name. Elsewhere, or when the flags cannot be read, the answer is ``False`` (fp32 is
    always correct; bf16 emulated without these instructions is slower than fp32).

    Args:
        flags: The CPU's flags; default: read them from ``/proc/cpuinfo``.

    Example:
        >>> cpu_supports_bf16({"avx2", "avx512f", "avx512_bf16"}), cpu_supports_bf16({"avx2", "avx512f"})
        (True, False)
    """
    if flags is None:
        flags = _cpu_flags()
    return not BF16_CPU_FLAGS.isdisjoint(flags)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def resolve_dtype(dtype: str, device: str, *, flags: Iterable[str] | None = None) -> str:
    """The precision a local model runs in: ``"auto"`` means bf16 on CUDA and on CPUs with
    native bf16 (:func:`cpu_supports_bf16`), fp32 elsewhere.

    Raises:
        ValueError: ``dtype`` is not ``"auto"``, ``"bfloat16"`` or ``"float32"``.

    Example:
        >>> resolve_dtype("auto", "cpu", flags={"avx512_bf16"}), resolve_dtype("auto", "cpu", flags=set())
        ('bfloat16', 'float32')
        >>> resolve_dtype("float32", "cuda")
        'float32'
    """
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") or cpu_supports_bf16(flags) else "float32"
    if dtype not in _SHORT_DTYPE:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(_SHORT_DTYPE)}, not {dtype!r}")
    return dtype


def backend_name(base: str, dtype: str, *, chat: bool = False) -> str:
    """A local backend's name: the model's name, then ``+bf16`` for a precision other than fp32
    and ``+chat`` with chat templating. Caches and stage fingerprints key on it.

    Example:
        >>> backend_name("transformers:gemma.gguf@0123", "bfloat16", chat=True)
        'transformers:gemma.gguf@0123+bf16+chat'
        >>> backend_name("transformers:gemma.gguf@0123", "float32")
        'transformers:gemma.gguf@0123'
    """
    precision = "" if dtype == "float32" else f"+{_SHORT_DTYPE[dtype]}"
    return f"{base}{precision}{'+chat' if chat else ''}"


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
