"""Token usage and estimated cost of LLM calls, from a configurable price table.

Prices are US dollars per million tokens. The built-in table (:data:`DEFAULT_PRICES`) covers
common API models at list price when it was written; prices change, so pass your own table
(``prices=``) or load one from a JSON file (:func:`load_prices`) for figures you will report.
Local backends (transformers, a local server) cost nothing per token; a model that is not in
the table has an unknown cost (``None``), never a guessed one. Answers bought through a
provider's batch API (:mod:`gecko_distill.llm.batch`) are priced at the batch price: half the
standard price unless the table says otherwise (``batch_input_per_mtok``, ``batch_output_per_mtok``).

Backend names have the form ``<provider>:<model>[#<options>]`` (e.g. ``"gemini:gemini-2.5-flash"``,
``"openai:gpt-4o-mini"``, ``"vllm:Qwen/Qwen2.5-7B-Instruct#api=chat"``); prices are looked up
by the model part.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .base import Generation, Score

__all__ = [
    "ModelPrice",
    "BATCH_DISCOUNT",
    "DEFAULT_PRICES",
    "FREE_PROVIDERS",
    "estimate_cost",
    "load_prices",
    "model_of",
    "error_reason",
    "Usage",
    "UsageTracker",
    "usage_from_results",
]


class ModelPrice(BaseModel):
    """Price of one model, in US dollars per million tokens.

    Attributes:
        input_per_mtok: Price of a million prompt tokens.
        output_per_mtok: Price of a million completion tokens (thinking tokens included).
        batch_input_per_mtok: Price of a million prompt tokens sent through the provider's
            batch API; ``None``: half of ``input_per_mtok`` (the Gemini and OpenAI batch discount).
        batch_output_per_mtok: The same for completion tokens; ``None``: half of ``output_per_mtok``.

    Example:
        >>> price = ModelPrice(input_per_mtok=0.3, output_per_mtok=2.5)
        >>> price.output_per_mtok, price.batch_prices()
        (2.5, (0.15, 1.25))
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    batch_input_per_mtok: float | None = Field(default=None, ge=0)
    batch_output_per_mtok: float | None = Field(default=None, ge=0)

    def batch_prices(self) -> tuple[float, float]:
        """(input, output) price per million tokens through the batch API."""
        return (
            self.input_per_mtok * BATCH_DISCOUNT if self.batch_input_per_mtok is None else self.batch_input_per_mtok,
            self.output_per_mtok * BATCH_DISCOUNT if self.batch_output_per_mtok is None else self.batch_output_per_mtok,
        )


#: Share of the standard price that a batch-API token costs when the table gives no batch
#: price (Gemini and OpenAI both charge half).
BATCH_DISCOUNT = 0.5


#: List prices (USD per million tokens, standard tier, prompts under 200k tokens), 2025.
#: Keys are model names or prefixes; the longest matching key wins, so
#: ``"gemini-2.5-flash-lite"`` is not priced as ``"gemini-2.5-flash"``.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gemini-2.5-pro": ModelPrice(input_per_mtok=1.25, output_per_mtok=10.0),
    "gemini-2.5-flash": ModelPrice(input_per_mtok=0.30, output_per_mtok=2.50),
    "gemini-2.5-flash-lite": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "gemini-2.0-flash": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "gemini-2.0-flash-lite": ModelPrice(input_per_mtok=0.075, output_per_mtok=0.30),
    "gpt-4o": ModelPrice(input_per_mtok=2.50, output_per_mtok=10.0),
    "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4.1": ModelPrice(input_per_mtok=2.00, output_per_mtok=8.00),
    "gpt-4.1-mini": ModelPrice(input_per_mtok=0.40, output_per_mtok=1.60),
    "gpt-4.1-nano": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
    "gpt-3.5-turbo-instruct": ModelPrice(input_per_mtok=1.50, output_per_mtok=2.00),
}

#: Providers whose tokens cost nothing per token (local models and self-hosted servers).
FREE_PROVIDERS = frozenset({"transformers", "vllm", "ollama", "llamacpp", "fake-llm", "fake"})


def model_of(llm_name: str) -> tuple[str, str]:
    """Split a backend name into ``(provider, model)``; options after ``#`` are dropped.

    Example:
        >>> model_of("gemini:gemini-2.5-flash#thinking=512")
        ('gemini', 'gemini-2.5-flash')
        >>> model_of("fake-llm")
        ('fake-llm', '')
    """
    base = llm_name.split("#", 1)[0]
    provider, _, model = base.partition(":")
    return provider, model


def estimate_cost(
    llm_name: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, ModelPrice | Mapping[str, float]] | None = None,
    *,
    batch: bool = False,
) -> float | None:
    """Estimated cost in US dollars of the given token counts, or ``None`` when unknown.

    Args:
        llm_name: The backend's ``name`` (e.g. ``"gemini:gemini-2.5-flash"``).
        prompt_tokens: Prompt tokens sent to the model (leave out cached answers).
        completion_tokens: Completion tokens the model wrote (thinking included).
        prices: Price table; default :data:`DEFAULT_PRICES`. Keys are model names or prefixes
            (the longest match wins) or a whole backend name; values are :class:`ModelPrice`
            or ``{"input_per_mtok": .., "output_per_mtok": ..}``.
        batch: The tokens went through the provider's batch API: priced at the batch price
            (:meth:`ModelPrice.batch_prices`).

    Returns:
        Dollars; ``0.0`` for local backends (:data:`FREE_PROVIDERS`) that are not in the
        table; ``None`` for a model that is not in the table.

    Example:
        >>> estimate_cost("gemini:gemini-2.5-flash", 1_000_000, 100_000)
        0.55
        >>> estimate_cost("gemini:gemini-2.5-flash", 1_000_000, 100_000, batch=True)
        0.275
        >>> estimate_cost("transformers:gemma-3-270m-q4_k_m.gguf@abc", 10**6, 10**6)
        0.0
        >>> estimate_cost("openai:my-finetune", 1000, 10) is None
        True
        >>> estimate_cost("openai:my-finetune", 10**6, 0, prices={"my-finetune": {"input_per_mtok": 2, "output_per_mtok": 4}})
        2.0
    """
    table = DEFAULT_PRICES if prices is None else prices
    provider, model = model_of(llm_name)
    price = _lookup(table, llm_name.split("#", 1)[0], model)
    if price is None:
        return 0.0 if provider in FREE_PROVIDERS else None
    price = price if isinstance(price, ModelPrice) else ModelPrice.model_validate(price)
    per_input, per_output = price.batch_prices() if batch else (price.input_per_mtok, price.output_per_mtok)
    cost = (prompt_tokens * per_input + completion_tokens * per_output) / 1e6
    return round(cost, 6)


def _lookup(table: Mapping, full_name: str, model: str):
    if full_name in table:
        return table[full_name]
    if not model:
        return None
    # "models/gemini-2.5-flash" and "gemini-2.5-flash-001" match "gemini-2.5-flash".
    bare = model.rsplit("/", 1)[-1] if model.startswith("models/") else model
    matches = [key for key in table if bare == key or bare.startswith(key + "-")]
    return table[max(matches, key=len)] if matches else None


def load_prices(path: str | Path) -> dict[str, ModelPrice]:
    """Read a price table from a JSON file ``{"model": {"input_per_mtok": .., "output_per_mtok": ..}}``.

    Entries are added to (and override) :data:`DEFAULT_PRICES`.

    Example:
        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "prices.json")
        >>> _ = open(path, "w").write(json.dumps({"my-model": {"input_per_mtok": 1, "output_per_mtok": 2}}))
        >>> load_prices(path)["my-model"].output_per_mtok
        2.0
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {**DEFAULT_PRICES, **{name: ModelPrice.model_validate(value) for name, value in raw.items()}}


def error_reason(error: str | None) -> str | None:
    """The reason code of an item's ``error`` (the text before the first colon).

    Backends in this package write errors as ``"<reason>: <detail>"`` with reasons such as
    ``http_429``, ``http_503``, ``timeout``, ``connection_error``, ``bad_response``,
    ``safety_blocked``, ``missing_field``, ``invalid_output``.

    Example:
        >>> error_reason("http_503: Service Unavailable after 4 attempts")
        'http_503'
        >>> error_reason(None) is None
        True
    """
    if error is None:
        return None
    head = error.split(":", 1)[0].strip()
    return head if head and " " not in head else "error"


class Usage(BaseModel):
    """Counters of one backend (or one stage), with the estimated cost.

    Attributes:
        items: Items answered, successfully or not (cached answers excluded).
        requests: HTTP requests sent, retries included.
        retries: Requests that repeated an earlier failed attempt.
        cached: Items answered from the cache.
        failures: Items that failed for good, by reason (see :func:`error_reason`).
        retried: Failed attempts that were retried, by reason.
        prompt_tokens: Prompt tokens the model processed.
        completion_tokens: Tokens the model wrote.
        choices_missing: Relevance answers whose top tokens listed none of the requested
            choices (every choice then got the same floor log-probability: a tie).

    Example:
        >>> before = Usage(requests=10, prompt_tokens=1000, completion_tokens=100)
        >>> after = Usage(requests=25, retries=1, prompt_tokens=4000, completion_tokens=400, failures={"http_503": 1})
        >>> stage = after - before
        >>> stage.requests, stage.failures, stage.cost("gemini:gemini-2.5-flash")
        (15, {'http_503': 1}, 0.00165)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = 0
    requests: int = 0
    retries: int = 0
    cached: int = 0
    failures: dict[str, int] = Field(default_factory=dict)
    retried: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    choices_missing: int = 0

    def cost(self, llm_name: str, prices: Mapping | None = None) -> float | None:
        """Estimated dollars for these tokens (see :func:`estimate_cost`)."""
        return estimate_cost(llm_name, self.prompt_tokens, self.completion_tokens, prices)

    def __sub__(self, earlier: Usage) -> Usage:
        """Usage since ``earlier`` (a snapshot of the same counters), e.g. one stage's share."""
        return Usage(
            **{name: getattr(self, name) - getattr(earlier, name) for name in _COUNTERS},
            failures=_minus(self.failures, earlier.failures),
            retried=_minus(self.retried, earlier.retried),
        )


_COUNTERS = ("items", "requests", "retries", "cached", "prompt_tokens", "completion_tokens", "choices_missing")


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = {k: v - b.get(k, 0) for k, v in a.items()}
    return {k: v for k, v in out.items() if v}


class UsageTracker:
    """Thread-safe counters behind a backend's ``usage`` property."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._failures: dict[str, int] = {}
        self._retried: dict[str, int] = {}

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value

    def failure(self, reason: str) -> None:
        with self._lock:
            self._counts["items"] += 1
            self._failures[reason] = self._failures.get(reason, 0) + 1

    def retry(self, reason: str) -> None:
        with self._lock:
            self._counts["retries"] += 1
            self._retried[reason] = self._retried.get(reason, 0) + 1

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage(**self._counts, failures=dict(self._failures), retried=dict(self._retried))


def usage_from_results(results: Iterable[Generation | Score]) -> Usage:
    """Count items, cache hits, failures by reason and tokens from a stage's results.

    Example:
        >>> from gecko_distill.llm import Generation
        >>> u = usage_from_results([Generation(text="a", prompt_tokens=10, completion_tokens=2),
        ...                         Generation(text="a", prompt_tokens=10, completion_tokens=2, cached=True),
        ...                         Generation(error="http_429: rate limited after 6 attempts")])
        >>> u.items, u.cached, u.failures, u.prompt_tokens
        (2, 1, {'http_429': 1}, 10)
    """
    items = cached = prompt = completion = 0
    failures: dict[str, int] = {}
    for r in results:
        if r.cached:
            cached += 1
            continue
        items += 1
        if r.error is not None:
            reason = error_reason(r.error) or "error"
            failures[reason] = failures.get(reason, 0) + 1
        prompt += r.prompt_tokens
        completion += getattr(r, "completion_tokens", 0)
    return Usage(items=items, cached=cached, failures=failures, prompt_tokens=prompt, completion_tokens=completion)
