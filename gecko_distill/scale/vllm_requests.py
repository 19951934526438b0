"""The library's LLM requests as inputs of Ray's vLLM processor (``ray.data.llm``), and its
output rows back as the library's answers.

The mapping is pure (no vLLM, no GPU, no Ray needed), so it is unit-tested anywhere; only
:func:`vllm_processor` needs ``ray[data]`` and, to run, vLLM on GPU machines.

* A :class:`~gecko_distill.llm.GenerationRequest` is one row: the prompt, and sampling
  parameters with the same stop strings and a seed derived from the prompt and
  ``sample_index`` (repeated samples differ, and a rerun draws the same ones).
* A :class:`~gecko_distill.llm.ScoreRequest` is one row per choice (one row when it has no
  choices): the token ids of ``context + continuation + suffix + <first token of the
  choice>``, tokenized piece by piece as :class:`~gecko_distill.llm.TransformersLLM` does,
  with ``prompt_logprobs=0`` and one generated token. The prompt log-probabilities then give
  the query likelihood (the continuation's tokens) and each choice's log-probability (the
  last token), from the prompt alone. With vLLM's prefix caching (on in
  :func:`vllm_processor`), the rows of one request share their prefill, so the fused QL+RC
  score costs one forward pass plus one token per choice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..llm.base import Generation, GenerationRequest, Score, ScoreRequest

__all__ = ["generation_input", "generation_output", "score_inputs", "score_output", "vllm_processor"]

Tokenize = Callable[[str, bool], list[int]]
"""``tokenize(text, add_special_tokens)``: the model's token ids of ``text``."""


def generation_input(request: GenerationRequest) -> dict[str, Any]:
    """The vLLM processor row of a generation request.

    Example:
        >>> row = generation_input(GenerationRequest(prompt="Passage: x\\nTask:", max_new_tokens=8, stop=("\\n\\n",)))
        >>> row["prompt"], row["sampling_params"]["max_tokens"], row["sampling_params"]["stop"]
        ('Passage: x\\nTask:', 8, ['\\n\\n'])
        >>> "seed" in row["sampling_params"]  # greedy: no seed needed
        False
    """
    params: dict[str, Any] = {
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "stop": list(request.stop),
        "include_stop_str_in_output": False,
    }
    if request.temperature > 0:
        digest = hashlib.sha256(repr((request.prompt, request.sample_index)).encode()).hexdigest()
        params["seed"] = int(digest[:8], 16)
    return {"prompt": request.prompt, "sampling_params": params}


def generation_output(row: Mapping[str, Any]) -> Generation:
    """The library's answer from a vLLM processor output row (``generated_text``,
    ``num_input_tokens``, ``num_generated_tokens``).

    Example:
        >>> generation_output({"generated_text": " Find answers\\nQuery: geckos", "num_input_tokens": 40,
        ...                    "num_generated_tokens": 6})
        Generation(text=' Find answers\\nQuery: geckos', prompt_tokens=40, completion_tokens=6, cached=False, error=None)
    """
    tokens = row.get("generated_tokens")
    completion = row.get("num_generated_tokens")
    if completion is None:
        completion = len(tokens) if tokens is not None else 0
    return Generation(
        text=str(row.get("generated_text") or ""),
        prompt_tokens=int(row.get("num_input_tokens") or 0),
        completion_tokens=int(completion),
    )


def score_inputs(
    request: ScoreRequest, tokenize: Tokenize, choice_ids: Sequence[int], max_length: int | None = None
) -> list[dict[str, Any]]:
    """The vLLM processor rows of a score request: one per choice, or one without choices.

    Args:
        request: The request.
        tokenize: The model's tokenizer, as ``tokenize(text, add_special_tokens)``.
        choice_ids: The token standing for each choice (its first token after other text, see
            :meth:`~gecko_distill.llm.TransformersLLM.choice_token_ids`).
        max_length: The model's context length: a longer input loses context tokens after the
            first (as the local backend cuts it).

    Returns:
        Rows with ``prompt_token_ids`` and ``sampling_params``, plus what :func:`score_output`
        reads back: ``n_continuation``, ``n_suffix`` and ``choice`` (its index, or -1).

    Example:
        >>> vocab = {"<s>": 1, "Passage": 2, "geckos": 3, "climb": 4, "?": 5, "Yes": 6, "No": 7}
        >>> def tokenize(text, special):
        ...     return ([1] if special else []) + [vocab[w] for w in text.split()]
        >>> rows = score_inputs(ScoreRequest(context="Passage", continuation=" geckos climb", suffix=" ?",
        ...                                  choices=(" Yes", " No")), tokenize, [6, 7])
        >>> [r["prompt_token_ids"] for r in rows], rows[0]["n_continuation"], rows[1]["choice"]
        ([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]], 2, 1)
    """
    if len(choice_ids) != len(request.choices):
        raise ValueError(f"{len(request.choices)} choices but {len(choice_ids)} choice token ids")
    context = tokenize(request.context, True)
    continuation = tokenize(request.continuation, False) if request.continuation else []
    suffix = tokenize(request.suffix, False) if request.suffix else []
    extra = 1 if request.choices else 0
    overflow = len(context) + len(continuation) + len(suffix) + extra - (max_length or 1 << 62)
    if overflow > 0:
        if overflow >= len(context) - 1:
            raise ValueError(
                f"the continuation and suffix alone ({len(continuation) + len(suffix)} tokens) exceed max_length={max_length}"
            )
        context = context[:1] + context[1 + overflow :]
    ids = context + continuation + suffix
    params = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0, "detokenize": False}
    common = {"n_continuation": len(continuation), "n_suffix": len(suffix), "sampling_params": params}
    if not request.choices:
        return [{"prompt_token_ids": ids, "choice": -1, **common}]
    return [{"prompt_token_ids": ids + [int(c)], "choice": i, **common} for i, c in enumerate(choice_ids)]


def score_output(request: ScoreRequest, rows: Sequence[Mapping[str, Any]]) -> Score:
    """The library's score from the output rows of :func:`score_inputs` (in any order).

    vLLM reports, per prompt position, the log-probability of the token there
    (``prompt_logprobs[j][token_id]["logprob"]``; position 0 has none). The continuation's
    tokens give the query likelihood, the last token of each choice row that choice's
    log-probability.

    Example:
        >>> def lp(ids, values):  # what vLLM returns: None, then {token: {"logprob": ..}} per position
        ...     return [None] + [{t: {"logprob": v, "rank": 1}} for t, v in zip(ids[1:], values)]
        >>> request = ScoreRequest(context="Passage", continuation=" geckos climb", suffix=" ?", choices=(" Yes", " No"))
        >>> rows = [{"prompt_token_ids": [1, 2, 3, 4, 5, 6], "n_continuation": 2, "n_suffix": 1, "choice": 0,
        ...          "prompt_logprobs": lp([1, 2, 3, 4, 5, 6], [-2.0, -0.5, -0.25, -1.0, -0.1])},
        ...         {"prompt_token_ids": [1, 2, 3, 4, 5, 7], "n_continuation": 2, "n_suffix": 1, "choice": 1,
        ...          "prompt_logprobs": lp([1, 2, 3, 4, 5, 7], [-2.0, -0.5, -0.25, -1.0, -3.0])}]
        >>> score = score_output(request, rows)
        >>> score.logprob, score.num_tokens, score.choice_logprobs, score.prompt_tokens
        (-0.75, 2, (-0.1, -3.0), 5)
    """
    if not rows:
        raise ValueError("no output rows for a score request")
    by_choice = {int(r["choice"]): r for r in rows}
    first = by_choice[min(by_choice)]
    ids = list(first["prompt_token_ids"])
    n_cont, n_suffix = int(first["n_continuation"]), int(first["n_suffix"])
    prompt_tokens = len(ids) - (1 if request.choices else 0)
    start = prompt_tokens - n_suffix - n_cont
    logprob = sum(_logprob_at(first, j) for j in range(start, start + n_cont))
    choices = tuple(_logprob_at(by_choice[i], prompt_tokens) for i in range(len(request.choices)))
    return Score(logprob=logprob, num_tokens=n_cont, choice_logprobs=choices, prompt_tokens=prompt_tokens)


def _logprob_at(row: Mapping[str, Any], position: int) -> float:
    """The log-probability vLLM gave the prompt token at ``position`` (token-id keys may come
    back as strings after a trip through Arrow)."""
    entry = row["prompt_logprobs"][position]
    token = int(row["prompt_token_ids"][position])
    if entry is None:
        raise ValueError(f"no prompt log-probability at position {position}")
    found = entry.get(token, entry.get(str(token)))
    if found is None:
        raise ValueError(f"vLLM returned no log-probability for token {token} at position {position}")
    return float(found["logprob"] if isinstance(found, Mapping) else found)


def vllm_processor(model: str, task: str, *, concurrency: int = 1, batch_size: int = 64, engine_kwargs: dict | None = None):
    """Ray's vLLM processor (``ray.data.llm.build_processor``) for the library's rows: ``task``
    ``"generate"`` takes :func:`generation_input` rows, ``"score"`` takes :func:`score_inputs`
    rows. Prefix caching is on; the rows carry their own token ids and sampling parameters, so
    the processor neither applies a chat template nor tokenizes. Runs only where vLLM and GPUs
    are (one GPU per replica by default).

    Args:
        model: The model, as vLLM loads it (a hub id or a folder).
        task: ``"generate"`` or ``"score"``.
        concurrency: vLLM replicas (data parallelism).
        batch_size: Rows per replica call.
        engine_kwargs: More vLLM engine arguments (``max_model_len``, ``tensor_parallel_size``...).
    """
    if task not in ("generate", "score"):
        raise ValueError(f"task must be 'generate' or 'score', not {task!r}")
    from .._lazy import require

    llm_api = require("ray.data.llm", "gecko-distill[ray]")
    config = llm_api.vLLMEngineProcessorConfig(
        model_source=model,
        engine_kwargs={"enable_prefix_caching": True, **(engine_kwargs or {})},
        concurrency=concurrency,
        batch_size=batch_size,
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,  # vLLM writes generated_text itself
    )
    return llm_api.build_processor(config)
