"""Gemini through the maintained ``google-genai`` SDK (``pip install 'gecko-distill[gemini]'``).

* **Generation**: one ``generateContent`` call per request, run concurrently under the limits
  of :class:`~gecko_distill.llm._http.ClientOptions`. With ``response_schema`` set to a
  pydantic model, Gemini answers JSON that follows it (structured output) and the JSON is
  validated before it is returned as the generation's text.
* **Relevance classification** (a :class:`~gecko_distill.llm.ScoreRequest` with an empty
  ``continuation`` and ``choices``): the top log-probabilities of the first output token
  (``response_logprobs``). Several Gemini models refuse logprobs on the Gemini API
  ("Logprobs is not enabled for models/…") or silently leave them out; with
  ``relevance="auto"`` the backend then asks for a graded label instead (the answer plus
  *certain*/*likely*/*unsure*, as JSON), logs a warning and adds a line to :attr:`GeminiLLM.notes`.
* **Query likelihood** (a non-empty ``continuation``) cannot be read from the API:
  :meth:`GeminiLLM.score` raises :class:`~gecko_distill.llm.UnsupportedCapabilityError` before
  sending anything.

* **Batch jobs** (:mod:`gecko_distill.llm.batch`, ``batch=True``): generation requests go to
  ``client.batches.create`` as inline requests, at half price; scoring stays online.

The API key comes from ``api_key``, the environment variable named by ``api_key_env``, or
``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``. It is sent in a header only: never in the backend's
``name``, its config, a log line or an error text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._lazy import require
from ._http import (
    Answer,
    APIBackend,
    AsyncRunner,
    ClientOptions,
    Job,
    MissingCredentialsError,
    RequestFailure,
    estimate_tokens,
    install_url_redaction,
    parse_retry_after,
    resolve_key,
    sample_seed,
    status_failure,
    transport_failure,
    url_userinfo,
    without_userinfo,
)
from .base import Generation, GenerationRequest, Score, ScoreRequest, UnsupportedCapabilityError
from .cost import UsageTracker

__all__ = ["GeminiLLM", "GeminiOptions", "MissingCredentialsError", "GRADED_LEVELS"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "gecko-distill[gemini]"
KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

#: Graded relevance labels and how sure each is; with k choices the chosen one gets
#: probability 1/k + (1 - 1/k) × weight and the others share the rest.
GRADED_LEVELS: dict[str, float] = {"certain": 0.9, "likely": 0.5, "unsure": 0.0}

#: Batch job states (``JobState``) as :class:`~gecko_distill.llm.batch.BatchStatus` states.
_BATCH_STATES = {
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "expired",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_QUEUED": "pending",
}
_BLOCKED_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MODEL_ARMOR"}
_LOGPROBS_REFUSED = re.compile(r"logprob", re.IGNORECASE)
_SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


class GeminiOptions(ClientOptions):
    """Settings of :class:`GeminiLLM` (plus the transport settings of ``ClientOptions``).

    Attributes:
        relevance: ``"auto"`` reads choices from logprobs and falls back to graded labels when
            the model does not return logprobs; ``"logprobs"`` never falls back (raises
            :class:`~gecko_distill.llm.UnsupportedCapabilityError` instead); ``"graded"``
            always asks for a graded label.
        top_logprobs: Candidates listed for the first output token (1–20).
        thinking_budget: Thinking tokens allowed (``0`` turns thinking off, which makes
            2.5-flash models cheaper and lets a one-token relevance answer come back);
            ``None`` sends no thinking setting (needed for models that cannot turn it off).
        response_schema: A pydantic model: generations are JSON objects of this schema.
        safety: ``"off"`` sends ``BLOCK_NONE`` for the harm categories (the API may still
            block); ``"default"`` keeps the API's settings. Blocked items are counted skips.
        api_version: REST API version (default: the SDK's).

    Example:
        >>> GeminiOptions(relevance="graded", concurrency=32).thinking_budget
        0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    relevance: Literal["auto", "logprobs", "graded"] = "auto"
    top_logprobs: int = Field(default=5, ge=1, le=20)
    thinking_budget: int | None = Field(default=0, ge=0)
    response_schema: type[BaseModel] | None = None
    safety: Literal["default", "off"] = "default"
    api_version: str | None = None


class _NoLogprobs(Exception):
    """The model did not give logprobs (refused them, or left them out)."""


class GeminiLLM(APIBackend):
    """Gemini as an :class:`~gecko_distill.llm.LLM` backend.

    Args:
        model: Gemini model id, e.g. ``"gemini-2.5-flash"``.
        api_key: The key itself (prefer an environment variable).
        api_key_env: Name of the environment variable that holds the key; default
            ``GEMINI_API_KEY``, then ``GOOGLE_API_KEY``.
        base_url: Another endpoint (a proxy or a test server).
        **options: Fields of :class:`GeminiOptions` (``concurrency``, ``requests_per_minute``,
            ``tokens_per_minute``, ``timeout_s``, ``max_attempts``, ``relevance``, …).

    Raises:
        MissingCredentialsError: No key was found.
        MissingDependencyError: ``google-genai`` is not installed.

    Example:
        >>> import os
        >>> os.environ.setdefault("GEMINI_API_KEY", "test-key")  # doctest: +SKIP
        >>> llm = GeminiLLM("gemini-2.5-flash", concurrency=16, requests_per_minute=900)  # doctest: +SKIP
        >>> llm.name  # doctest: +SKIP
        'gemini:gemini-2.5-flash'
        >>> from gecko_distill.llm import GenerationRequest, ScoreRequest
        >>> llm.generate([GenerationRequest(prompt="Write a search query about geckos.")])[0].text  # doctest: +SKIP
        >>> llm.score([ScoreRequest(context="Passage: ...\\nQuery: ...\\nRelevant?", choices=(" Yes", " No"))])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "gemini-2.5-flash",
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        **options: Any,
    ):
        genai = require("google.genai", INSTALL_HINT)
        self._types = require("google.genai.types", INSTALL_HINT)
        self._errors = require("google.genai.errors", INSTALL_HINT)
        self.model = model
        self.options = GeminiOptions(**options)
        self.base_url = base_url
        install_url_redaction()  # the HTTP client logs every request URL at INFO (-v)
        key = resolve_key(api_key, api_key_env, KEY_ENV_VARS, what="Gemini API key")
        http_options = self._types.HttpOptions(
            base_url=base_url,
            api_version=self.options.api_version,
            # Our own timeout (asyncio) fires first; the SDK's is a backstop.
            timeout=int((self.options.timeout_s + 5) * 1000),
        )
        self._client = genai.Client(api_key=key, http_options=http_options)
        self._usage = UsageTracker()
        self._runner = AsyncRunner(self.options, self._usage, name=self.name, secrets=[key, *url_userinfo(base_url or "")])
        aclose = getattr(self._client.aio, "aclose", None)  # older SDKs have none
        if aclose is not None:
            self._runner.on_close(aclose)
        self._logprobs: bool | None = None  # whether the model gives logprobs; None until known
        self._no_logprobs_reason = ""
        self._notes: list[str] = []

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``gemini:<model>``, plus the options that change answers (never the key)."""
        opts = self.options
        extras = []
        if opts.thinking_budget != 0:
            extras.append(f"thinking={opts.thinking_budget}")
        if opts.relevance == "graded":
            extras.append("relevance=graded")
        if opts.safety != "default":
            extras.append(f"safety={opts.safety}")
        if opts.response_schema is not None:
            schema = json.dumps(opts.response_schema.model_json_schema(), sort_keys=True)
            extras.append(f"schema={opts.response_schema.__name__}-{hashlib.sha256(schema.encode()).hexdigest()[:8]}")
        return f"gemini:{self.model}" + ("#" + ",".join(extras) if extras else "")

    def get_config_dict(self) -> dict[str, Any]:
        """Settings for manifests; credentials are never included."""
        options = self.options.model_dump(exclude={"response_schema"})
        schema = self.options.response_schema
        return {
            "backend": "gemini",
            "name": self.name,
            "model": self.model,
            "base_url": without_userinfo(self.base_url) if self.base_url else None,
            **options,
            "response_schema": schema.__name__ if schema else None,
        }

    def __repr__(self) -> str:
        return f"GeminiLLM(model={self.model!r}, base_url={without_userinfo(self.base_url) if self.base_url else None!r})"

    # -- generation ----------------------------------------------------------------------
    def iter_generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """Yield ``(index, generation)`` as each request finishes (used by :class:`CachedLLM`
        to store every answer at once)."""
        jobs = [
            Job(
                call=lambda r=r: self._generate_one(r),
                fail=lambda error, r=r: Generation(error=error),
                tokens=estimate_tokens(r.prompt, r.max_new_tokens),
            )
            for r in requests
        ]
        return self._runner.run(jobs)

    async def _generate_one(self, request: GenerationRequest) -> Answer[Generation]:
        response = await self._call(request.prompt, self._generation_config(request))
        return self._generation_of(request, response)

    def _generation_config(self, request: GenerationRequest) -> Any:
        """The ``GenerateContentConfig`` of a generation request (online and in batch jobs)."""
        config: dict[str, Any] = {
            "temperature": request.temperature,
            "max_output_tokens": request.max_new_tokens,
            "candidate_count": 1,
            **self._common_config(),
        }
        if request.stop:
            config["stop_sequences"] = list(request.stop[:5])  # the API takes at most five
        if request.temperature > 0:
            config["seed"] = sample_seed(request.prompt, request.sample_index)
        schema = self.options.response_schema
        if schema is not None:
            config.update(response_mime_type="application/json", response_schema=schema)
        return self._types.GenerateContentConfig(**config)

    def _generation_of(self, request: GenerationRequest, response: Any) -> Answer[Generation]:
        """The generation in a ``GenerateContentResponse``; raises :class:`RequestFailure`."""
        text = _text_of(response)
        for stop in request.stop:
            text = text.split(stop, 1)[0]
        schema = self.options.response_schema
        if schema is not None:
            try:
                schema.model_validate_json(text)
            except ValidationError as exc:
                raise RequestFailure(
                    "invalid_output", f"not a valid {schema.__name__}: {exc.errors()[0]['msg']}", retryable=False
                ) from None
        prompt_tokens, completion_tokens = _tokens(response)
        return Answer(
            Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            prompt_tokens,
            completion_tokens,
        )

    # -- scoring -------------------------------------------------------------------------
    def iter_score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, Score]]:
        """Yield ``(index, score)`` as each request finishes (:meth:`score` collects them in order).

        Raises:
            UnsupportedCapabilityError: A request has a non-empty ``continuation`` (Gemini
                cannot score given text), or ``relevance="logprobs"`` and the model gives none.
        """
        if any(r.continuation for r in requests):
            raise UnsupportedCapabilityError(
                f"{self.name} cannot score a given continuation (query likelihood): the Gemini API has no "
                "prompt log-probabilities. Score relevance only (an empty continuation with choices), "
                "or use a second backend for query likelihood."
            )
        if self._logprobs is False and self.options.relevance == "logprobs":
            raise UnsupportedCapabilityError(f"{self.name} gives no logprobs: {self._no_logprobs_reason}")
        jobs = [
            Job(
                call=lambda r=r: self._score_one(r),
                fail=lambda error: Score(error=error),
                tokens=estimate_tokens(r.context + r.suffix, 1),
            )
            for r in requests
        ]
        return self._probe_then_rest(jobs)

    def _probe_then_rest(self, jobs: list[Job[Score]]) -> Iterator[tuple[int, Score]]:
        # While it is unknown whether the model gives logprobs, one item finds out first, so
        # that a fallback happens once and before the batch is sent.
        start = 0
        if self.options.relevance != "graded" and self._logprobs is None and jobs:
            yield from self._runner.run(jobs[:1])
            start = 1
        for index, score in self._runner.run(jobs[start:]):
            yield index + start, score

    async def _score_one(self, request: ScoreRequest) -> Answer[Score]:
        if not request.choices:
            return Answer(Score())
        if self.options.relevance != "graded" and self._logprobs is not False:
            try:
                answer = await self._score_logprobs(request)
            except _NoLogprobs as exc:
                self._no_logprobs(str(exc))
                if self.options.relevance == "logprobs":
                    raise UnsupportedCapabilityError(f"{self.name} gives no logprobs: {self._no_logprobs_reason}") from None
                self._usage.add(requests=1)  # the graded request below
            else:
                self._logprobs = True
                return answer
        return await self._score_graded(request)

    async def _score_logprobs(self, request: ScoreRequest) -> Answer[Score]:
        config = self._types.GenerateContentConfig(
            temperature=0.0,
            max_output_tokens=self._answer_budget(1),
            response_logprobs=True,
            logprobs=self.options.top_logprobs,
            **self._common_config(),
        )
        try:
            response = await self._call(request.context + request.suffix, config)
        except RequestFailure as exc:
            if exc.reason == "http_400" and _LOGPROBS_REFUSED.search(exc.detail):
                raise _NoLogprobs(exc.detail) from None
            raise
        candidate = _candidate(response)
        result = candidate.logprobs_result
        steps = (result.top_candidates or []) if result is not None else []
        top = [(c.token or "", c.log_probability) for c in (steps[0].candidates or [])] if steps else []
        top = [(token, lp) for token, lp in top if lp is not None]
        if not top:
            raise _NoLogprobs("the response has no logprobs")
        prompt_tokens, completion_tokens = _tokens(response)
        score = Score(choice_logprobs=self._choice_logprobs(request.choices, top), prompt_tokens=prompt_tokens)
        return Answer(score, prompt_tokens, completion_tokens)

    async def _score_graded(self, request: ScoreRequest) -> Answer[Score]:
        labels = _labels(request.choices)
        schema = {
            "type": "OBJECT",
            "properties": {
                "answer": {"type": "STRING", "enum": labels},
                "confidence": {"type": "STRING", "enum": list(GRADED_LEVELS)},
            },
            "required": ["answer", "confidence"],
        }
        instruction = (
            f"\n\nAnswer with one of: {', '.join(labels)}; and say how sure you are: {', '.join(GRADED_LEVELS)}. Reply with JSON."
        )
        config = self._types.GenerateContentConfig(
            temperature=0.0,
            max_output_tokens=self._answer_budget(64),
            response_mime_type="application/json",
            response_schema=schema,
            **self._common_config(),
        )
        response = await self._call(request.context + request.suffix + instruction, config)
        text = _text_of(response)
        try:
            graded = json.loads(text)
            answer, level = labels.index(graded["answer"]), GRADED_LEVELS[graded["confidence"]]
        except (ValueError, KeyError, TypeError):
            raise RequestFailure("invalid_output", f"not a graded label: {text[:80]!r}", retryable=False) from None
        k = len(labels)
        p_answer = 1 / k + (1 - 1 / k) * level
        p_other = (1 - p_answer) / (k - 1) if k > 1 else 0.0
        logprobs = tuple(math.log(p_answer) if i == answer else math.log(max(p_other, 1e-12)) for i in range(k))
        prompt_tokens, completion_tokens = _tokens(response)
        return Answer(Score(choice_logprobs=logprobs, prompt_tokens=prompt_tokens), prompt_tokens, completion_tokens)

    def _no_logprobs(self, reason: str) -> None:
        if self._logprobs is False:
            return
        self._logprobs = False
        self._no_logprobs_reason = self._runner.redact(reason)[:160]
        if self.options.relevance == "logprobs":
            return
        note = (
            f"{self.name}: the model gives no logprobs ({self._no_logprobs_reason}); relevance is scored "
            f"from graded labels ({'/'.join(GRADED_LEVELS)}), which rank candidates more coarsely than logprobs"
        )
        self._note(note)

    # -- batch API (gecko_distill.llm.batch) ------------------------------------------------
    #: Inline requests per batch job, and their size (the API takes up to 20 MB inline).
    BATCH_MAX_REQUESTS = 10_000
    BATCH_MAX_BYTES = 15_000_000

    def batch_route(self, method: str, request: Any) -> str | None:
        """``"generateContent"`` for generation; ``""`` (not batched) for scoring: query
        likelihood is not available from Gemini at all, and whether a model gives relevance
        logprobs (or needs graded labels) is found out online, item by item."""
        return "generateContent" if method == "generate" else ""

    def batch_limits(self) -> tuple[int, int]:
        return self.BATCH_MAX_REQUESTS, self.BATCH_MAX_BYTES

    def batch_submit(self, method: str, route: str, items: Sequence[tuple[str, Any]], label: str) -> str:
        """``client.batches.create`` with inline requests; each carries its cache key as metadata."""
        types = self._types
        inlined = [
            types.InlinedRequest(contents=request.prompt, config=self._generation_config(request), metadata={"key": key})
            for key, request in items
        ]
        config = types.CreateBatchJobConfig(display_name=label)
        job = self._batch_api(lambda: self._client.batches.create(model=self.model, src=inlined, config=config))
        return str(job.name)

    def batch_find(self, label: str) -> str | None:
        jobs = self._batch_api(lambda: list(self._client.batches.list(config={"page_size": 100})))
        return next((str(job.name) for job in jobs if job.display_name == label), None)

    def batch_status(self, name: str) -> Any:
        from .batch import BatchStatus

        job = self._batch_api(lambda: self._client.batches.get(name=name))
        error = getattr(job, "error", None)
        message = self._runner.redact(str(error.message or "")) if error is not None else ""
        return BatchStatus(state=_BATCH_STATES.get(_enum_name(job.state), "running"), message=message)

    def batch_results(self, name: str, method: str, requests: Mapping[str, Any]) -> dict[str, Generation]:
        """The answers of a finished job by cache key (read from each answer's metadata, else
        from its position); an item the job could not answer has ``error`` set."""
        job = self._batch_api(lambda: self._client.batches.get(name=name))
        responses = (job.dest.inlined_responses if job.dest is not None else None) or []
        keys = list(requests)
        out: dict[str, Generation] = {}
        for index, item in enumerate(responses):
            key = (item.metadata or {}).get("key") or (keys[index] if index < len(keys) else None)
            request = requests.get(key) if key else None
            if request is None:
                continue
            if item.error is not None:
                detail = f"code {item.error.code}: {item.error.message or 'no message'}"
                out[key] = Generation(error=self._runner.redact(f"batch_item_error: {detail}"))
            elif item.response is not None:
                try:
                    out[key] = self._generation_of(request, item.response).result
                except RequestFailure as exc:
                    out[key] = Generation(error=self._runner.redact(f"{exc.reason}: {exc.detail}"))
        return out

    def _batch_api(self, call: Any) -> Any:
        """A synchronous batch API call; failures become :class:`RequestFailure`."""
        try:
            return call()
        except self._errors.APIError as exc:
            raise status_failure(exc.code or 0, self._runner.redact(exc.message or str(exc)), _retry_after(exc)) from None
        except Exception as exc:
            failure = transport_failure(exc)
            if failure is None:
                raise
            raise failure from None

    # -- shared --------------------------------------------------------------------------
    def _answer_budget(self, answer_tokens: int) -> int:
        """Output tokens for a short answer: thinking tokens count against the same budget."""
        budget = self.options.thinking_budget
        return answer_tokens + (budget if budget is not None else 2048)

    def _common_config(self) -> dict[str, Any]:
        types = self._types
        config: dict[str, Any] = {"automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True)}
        if self.options.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=self.options.thinking_budget)
        if self.options.safety == "off":
            config["safety_settings"] = [types.SafetySetting(category=c, threshold="BLOCK_NONE") for c in _SAFETY_CATEGORIES]
        return config

    async def _call(self, prompt: str, config: Any) -> Any:
        """One ``generateContent`` call; every failure becomes a :class:`RequestFailure`."""
        try:
            return await self._client.aio.models.generate_content(model=self.model, contents=prompt, config=config)
        except self._errors.APIError as exc:
            raise status_failure(exc.code or 0, exc.message or str(exc), _retry_after(exc)) from None
        except RequestFailure:
            raise
        except Exception as exc:
            failure = transport_failure(exc)
            if failure is None:
                raise
            raise failure from None


def _retry_after(exc: Any) -> float | None:
    """Seconds from a ``Retry-After`` header, else from the error's ``RetryInfo`` detail."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is not None:
        value = parse_retry_after(headers.get("retry-after"))
        if value is not None:
            return value
    details = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    for detail in details.get("details", []) if isinstance(details, dict) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            return parse_retry_after(delay[:-1])
    return None


def _candidate(response: Any) -> Any:
    """The first candidate, or a :class:`RequestFailure` for a blocked or malformed answer."""
    if not response.candidates:
        feedback = response.prompt_feedback
        block = getattr(feedback, "block_reason", None) if feedback is not None else None
        if block:
            raise RequestFailure("safety_blocked", f"prompt blocked ({_enum_name(block)})", retryable=False)
        raise RequestFailure("missing_field", "the response has no candidates", retryable=False)
    candidate = response.candidates[0]
    finish = _enum_name(candidate.finish_reason)
    if finish in _BLOCKED_FINISH:
        raise RequestFailure("safety_blocked", f"answer blocked (finish_reason={finish})", retryable=False)
    if candidate.content is None or not candidate.content.parts:
        raise RequestFailure("missing_field", f"the candidate has no content (finish_reason={finish})", retryable=False)
    return candidate


def _text_of(response: Any) -> str:
    candidate = _candidate(response)
    return "".join(p.text for p in candidate.content.parts if p.text and not p.thought)


def _tokens(response: Any) -> tuple[int, int]:
    meta = response.usage_metadata
    if meta is None:
        return 0, 0
    completion = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return meta.prompt_token_count or 0, completion


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _labels(choices: Sequence[str]) -> list[str]:
    labels = [c.strip() for c in choices]
    if len(set(labels)) != len(labels) or not all(labels):
        raise ValueError(f"choices {choices!r} are not distinct once stripped of spaces")
    return labels
