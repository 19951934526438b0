"""OpenAI-compatible HTTP servers: vLLM, Ollama, the llama.cpp server, OpenAI itself
(``pip install 'gecko-distill[openai]'``, which only adds ``httpx``; ``httpx2`` is used instead
when it is installed).

* **Generation**: ``/chat/completions`` (the prompt is one user message) or ``/completions``
  (the prompt as is: best for base models and few-shot prompts), chosen by ``api``.
* **Query likelihood** (a :class:`~gecko_distill.llm.ScoreRequest` with a ``continuation``):
  ``/completions`` with ``echo=true`` and ``logprobs``, ``max_tokens=1``. The log-probabilities
  of the prompt tokens that overlap the continuation are summed; the top log-probabilities of
  the one generated token give the ``choices`` from the same request (Gecko's two signals in
  one pass). vLLM supports this; OpenAI's current models, Ollama and the llama.cpp server do
  not. The first such request of a backend is sent alone as a probe; if the server refuses
  ``echo`` or answers without prompt log-probabilities, :meth:`OpenAICompatLLM.score` raises
  :class:`~gecko_distill.llm.UnsupportedCapabilityError` (and keeps raising it at once).
* **Relevance classification** (empty ``continuation``, with ``choices``): the top
  log-probabilities of a one-token completion, on the same API as generation.

* **Batch jobs** (:mod:`gecko_distill.llm.batch`, ``batch=True``): the requests are uploaded
  as a JSONL file (``/v1/files``) and run as a job (``/v1/batches``), at half price on OpenAI;
  generation, query likelihood and relevance all go in batches (scoring once the server has
  shown online that it gives log-probabilities).

Every online request goes through :class:`~gecko_distill.llm._http.AsyncRunner`: bounded concurrency,
request and token rate limits, retries with backoff that honour ``Retry-After``, and one
failed item becomes one result with ``error`` set. The API key is sent only in the
``Authorization`` header; it is never part of ``name``, the config, logs or error texts.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .._lazy import require
from ._http import (
    Answer,
    APIBackend,
    AsyncRunner,
    ClientOptions,
    Job,
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

__all__ = ["OpenAICompatLLM", "OpenAICompatOptions", "PROVIDERS", "Provider"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "gecko-distill[openai]"

Provider = Literal["openai", "vllm", "ollama", "llamacpp"]

#: Per provider: default base URL, environment variables that may hold the key, whether a
#: key is required, and the default API for generation.
PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "key_envs": ("OPENAI_API_KEY",), "key_required": True, "api": "chat"},
    "vllm": {"base_url": "http://localhost:8000/v1", "key_envs": ("VLLM_API_KEY",), "key_required": False, "api": "completions"},
    "ollama": {"base_url": "http://localhost:11434/v1", "key_envs": (), "key_required": False, "api": "chat"},
    "llamacpp": {
        "base_url": "http://localhost:8080/v1",
        "key_envs": ("LLAMA_API_KEY",),
        "key_required": False,
        "api": "completions",
    },
}

_UNSUPPORTED_HINT = re.compile(r"echo|logprob|not supported|unsupported|completions endpoint", re.IGNORECASE)
_SAFETY_HINT = re.compile(r"content_filter|content_policy|content management policy|safety", re.IGNORECASE)


class OpenAICompatOptions(ClientOptions):
    """Settings of :class:`OpenAICompatLLM` (plus the transport settings of ``ClientOptions``).

    Attributes:
        api: ``"chat"`` or ``"completions"`` for generation and relevance; default per
            provider (chat for OpenAI and Ollama, completions for vLLM and llama.cpp).
        query_likelihood: ``"auto"`` probes ``echo`` + ``logprobs`` on first use; ``"off"``
            raises :class:`~gecko_distill.llm.UnsupportedCapabilityError` for continuations
            without asking the server.
        top_logprobs: Candidates listed for the next token (OpenAI allows up to 20 on chat and
            5 on completions; vLLM up to its ``--max-logprobs``).
        max_tokens_field: ``"max_completion_tokens"`` for OpenAI reasoning models.
        seed: Send a per-sample seed when sampling (``temperature > 0``).
        extra_body: Extra JSON fields sent with every request (e.g. vLLM's ``top_k``).

    Example:
        >>> OpenAICompatOptions(api="completions", extra_body={"top_k": 20}).top_logprobs
        5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    api: Literal["chat", "completions"] | None = None
    query_likelihood: Literal["auto", "off"] = "auto"
    top_logprobs: int = Field(default=5, ge=1, le=20)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    seed: bool = True
    extra_body: dict[str, Any] = Field(default_factory=dict)


class _Unsupported(Exception):
    pass


class OpenAICompatLLM(APIBackend):
    """A model behind an OpenAI-compatible server, as an :class:`~gecko_distill.llm.LLM` backend.

    Args:
        model: The model name the server knows (e.g. ``"gpt-4o-mini"``, or the model id or
            ``--served-model-name`` of a vLLM server).
        provider: ``"openai"``, ``"vllm"``, ``"ollama"`` or ``"llamacpp"``: picks the default
            base URL, key variable and API, and prefixes ``name``.
        base_url: The server's ``/v1`` URL; default per provider (``$OPENAI_BASE_URL`` for
            ``openai`` if set).
        api_key: The key itself (prefer an environment variable).
        api_key_env: Name of the environment variable holding the key; default per provider
            (``OPENAI_API_KEY``, ``VLLM_API_KEY``, ``LLAMA_API_KEY``). Local servers need none.
        **options: Fields of :class:`OpenAICompatOptions` (``api``, ``concurrency``,
            ``requests_per_minute``, ``tokens_per_minute``, ``timeout_s``, …).

    Example:
        >>> llm = OpenAICompatLLM("Qwen/Qwen2.5-7B-Instruct", provider="vllm", base_url="http://gpu-box:8000/v1")  # doctest: +SKIP
        >>> llm.name  # doctest: +SKIP
        'vllm:Qwen/Qwen2.5-7B-Instruct'
        >>> from gecko_distill.llm import ScoreRequest
        >>> llm.score([ScoreRequest(context="Passage: geckos climb glass.\\nQuery:", continuation=" gecko feet",
        ...                         suffix="\\nRelevant?", choices=(" Yes", " No"))])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str,
        *,
        provider: Provider = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        **options: Any,
    ):
        self._httpx = _http_client_module()
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {sorted(PROVIDERS)}")
        defaults = PROVIDERS[provider]
        self.model = model
        self.provider = provider
        self.options = OpenAICompatOptions(**options)
        self.api: str = self.options.api or defaults["api"]
        env_base = os.environ.get("OPENAI_BASE_URL") if provider == "openai" else None
        self.base_url = (base_url or env_base or defaults["base_url"]).rstrip("/")
        official = self.base_url == PROVIDERS["openai"]["base_url"]
        install_url_redaction()  # httpx logs every request URL at INFO (-v)
        key = resolve_key(
            api_key, api_key_env, defaults["key_envs"], what=f"API key for {without_userinfo(self.base_url)}", required=official
        )
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._usage = UsageTracker()
        secrets = [key or "", *url_userinfo(self.base_url)]
        self._runner = AsyncRunner(self.options, self._usage, name=self.name, secrets=secrets)
        self._runner.on_close(self._aclose)
        self._clients: dict[int, Any] = {}
        self._ql: bool | None = None if self.options.query_likelihood == "auto" else False
        self._ql_reason = "query_likelihood='off'"
        self._rc: bool | None = None
        self._notes: list[str] = []

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``<provider>:<model>``, plus ``#api=…`` when not the provider's default (never the key)."""
        suffix = f"#api={self.api}" if self.api != PROVIDERS[self.provider]["api"] else ""
        return f"{self.provider}:{self.model}{suffix}"

    def get_config_dict(self) -> dict[str, Any]:
        """Settings for manifests; credentials are never included."""
        return {
            "backend": "openai_compat",
            "name": self.name,
            "model": self.model,
            "provider": self.provider,
            "base_url": without_userinfo(self.base_url),
            **self.options.model_dump(),
            "api": self.api,
        }

    def __repr__(self) -> str:
        return f"OpenAICompatLLM(model={self.model!r}, provider={self.provider!r}, base_url={without_userinfo(self.base_url)!r})"

    # -- generation ----------------------------------------------------------------------
    def iter_generate(self, requests: Sequence[GenerationRequest]) -> Iterator[tuple[int, Generation]]:
        """Yield ``(index, generation)`` as each request finishes."""
        jobs = [
            Job(
                call=lambda r=r: self._generate_one(r),
                fail=lambda error: Generation(error=error),
                tokens=estimate_tokens(r.prompt, r.max_new_tokens),
            )
            for r in requests
        ]
        return self._runner.run(jobs)

    async def _generate_one(self, request: GenerationRequest) -> Answer[Generation]:
        data = await self._complete(request.prompt, self._generation_payload(request), api=self.api)
        return self._generation_of(request, data)

    def _generation_payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            self.options.max_tokens_field: request.max_new_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            payload["stop"] = list(request.stop[:4])  # OpenAI takes at most four
        if request.temperature > 0 and self.options.seed:
            payload["seed"] = sample_seed(request.prompt, request.sample_index)
        return payload

    def _generation_of(self, request: GenerationRequest, data: dict[str, Any]) -> Answer[Generation]:
        """The generation in a response body; raises :class:`RequestFailure`."""
        choice = _first_choice(data)
        text = _choice_text(choice, self.api)
        for stop in request.stop:
            text = text.split(stop, 1)[0]
        prompt_tokens, completion_tokens = _usage_of(data)
        return Answer(
            Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            prompt_tokens,
            completion_tokens,
        )

    # -- scoring -------------------------------------------------------------------------
    def iter_score(self, requests: Sequence[ScoreRequest]) -> Iterator[tuple[int, Score]]:
        """Yield ``(index, score)`` as each request finishes (:meth:`score` collects them in order).

        Raises:
            UnsupportedCapabilityError: A request has a ``continuation`` and the server cannot
                echo prompt log-probabilities, or the server gives no log-probabilities at all.
        """
        needs_ql = any(r.continuation for r in requests)
        if needs_ql and self._ql is False:
            raise UnsupportedCapabilityError(f"{self.name} cannot score a given continuation: {self._ql_reason}")
        jobs = [
            Job(
                call=lambda r=r: self._score_one(r),
                fail=lambda error: Score(error=error),
                tokens=estimate_tokens(r.context + r.continuation + r.suffix, 1),
            )
            for r in requests
        ]
        unknown = (needs_ql and self._ql is None) or (any(r.choices for r in requests) and self._rc is None)
        return self._probe_then_rest(jobs) if unknown else self._runner.run(jobs)

    def _probe_then_rest(self, jobs: list[Job[Score]]) -> Iterator[tuple[int, Score]]:
        # The first item goes alone: if the server cannot do it, nothing else is sent.
        yield from self._runner.run(jobs[:1])
        for index, score in self._runner.run(jobs[1:]):
            yield index + 1, score

    async def _score_one(self, request: ScoreRequest) -> Answer[Score]:
        if request.continuation:
            return await self._score_echo(request)
        if request.choices:
            return await self._score_choices(request)
        return Answer(Score())

    async def _score_echo(self, request: ScoreRequest) -> Answer[Score]:
        prompt = request.context + request.continuation + request.suffix
        try:
            data = await self._complete(prompt, self._echo_payload(request), api="completions", probing=self._ql is None)
            answer = self._echo_score_of(request, data)
        except _Unsupported as exc:
            self._mark_no_ql(str(exc))
            raise UnsupportedCapabilityError(f"{self.name} cannot score a given continuation: {self._ql_reason}") from None
        self._ql = True
        return answer

    def _echo_payload(self, request: ScoreRequest) -> dict[str, Any]:
        return {
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": self.options.top_logprobs if request.choices else 1,
        }

    def _echo_score_of(self, request: ScoreRequest, data: dict[str, Any]) -> Answer[Score]:
        """Query likelihood (and choices) from an echo response; raises :class:`RequestFailure`
        or ``_Unsupported``."""
        prompt = request.context + request.continuation + request.suffix
        logprob, num_tokens, next_top = _echo_logprobs(_first_choice(data), prompt, request)
        choices: tuple[float, ...] = ()
        if request.choices:
            if not next_top:
                raise RequestFailure("missing_field", "no logprobs for the token after the prompt", retryable=False)
            choices = self._choice_logprobs(request.choices, next_top)
            self._rc = True
        prompt_tokens, completion_tokens = _usage_of(data)
        score = Score(logprob=logprob, num_tokens=num_tokens, choice_logprobs=choices, prompt_tokens=prompt_tokens)
        return Answer(score, prompt_tokens, completion_tokens)

    async def _score_choices(self, request: ScoreRequest) -> Answer[Score]:
        prompt = request.context + request.suffix
        try:
            data = await self._complete(prompt, self._choices_payload(), api=self.api, probing=self._rc is None)
            answer = self._choices_score_of(request, data)
        except _Unsupported as exc:
            self._rc = False
            raise UnsupportedCapabilityError(f"{self.name} gives no token log-probabilities: {exc}") from None
        self._rc = True
        return answer

    def _choices_payload(self) -> dict[str, Any]:
        k = self.options.top_logprobs
        payload: dict[str, Any] = {self.options.max_tokens_field if self.api == "chat" else "max_tokens": 1, "temperature": 0.0}
        payload.update({"logprobs": True, "top_logprobs": k} if self.api == "chat" else {"logprobs": k})
        return payload

    def _choices_score_of(self, request: ScoreRequest, data: dict[str, Any]) -> Answer[Score]:
        top = _next_token_top(_first_choice(data), self.api)
        prompt_tokens, completion_tokens = _usage_of(data)
        score = Score(choice_logprobs=self._choice_logprobs(request.choices, top), prompt_tokens=prompt_tokens)
        return Answer(score, prompt_tokens, completion_tokens)

    def _mark_no_ql(self, reason: str) -> None:
        self._ql = False
        self._ql_reason = self._runner.redact(reason)[:200]
        note = f"{self.name}: no query likelihood ({self._ql_reason}); the server cannot echo prompt log-probabilities"
        self._note(note)

    # -- batch API (gecko_distill.llm.batch) ------------------------------------------------
    #: Requests per batch job and the size of its input file (OpenAI: 50,000 and 200 MB).
    BATCH_MAX_REQUESTS = 50_000
    BATCH_MAX_BYTES = 190_000_000
    #: Batch states (``status``) as :class:`~gecko_distill.llm.batch.BatchStatus` states.
    _BATCH_STATES = {
        "validating": "pending",
        "in_progress": "running",
        "finalizing": "running",
        "cancelling": "running",
        "completed": "succeeded",
        "failed": "failed",
        "expired": "expired",
        "cancelled": "cancelled",
    }

    def batch_route(self, method: str, request: Any) -> str | None:
        """The endpoint of a request in a batch job: ``"chat"`` or ``"completions"``.

        Generation uses the backend's API. Query likelihood (``echo``) and relevance
        (``logprobs``) go in batches once the server has shown online that it gives them
        (``None`` until then: one request is sent online first); a server that does not give
        them gets no such requests (``""``), as online.
        """
        if method == "generate":
            return self.api
        if request.continuation:
            return None if self._ql is None else ("completions" if self._ql else "")
        if request.choices:
            return None if self._rc is None else (self.api if self._rc else "")
        return ""  # nothing to ask the server

    def batch_limits(self) -> tuple[int, int]:
        return self.BATCH_MAX_REQUESTS, self.BATCH_MAX_BYTES

    def _batch_line(self, key: str, method: str, route: str, request: Any) -> dict[str, Any]:
        if method == "generate":
            path, body = self._body(request.prompt, self._generation_payload(request), route)
        elif request.continuation:
            path, body = self._body(
                request.context + request.continuation + request.suffix, self._echo_payload(request), "completions"
            )
        else:
            path, body = self._body(request.context + request.suffix, self._choices_payload(), route)
        return {"custom_id": key, "method": "POST", "url": "/v1" + path, "body": body}

    def batch_submit(self, method: str, route: str, items: Sequence[tuple[str, Any]], label: str) -> str:
        """Upload the requests as a JSONL file (``/files``, purpose ``batch``), then create the
        job (``/batches``) with ``label`` in its metadata. Each line's ``custom_id`` is its cache key."""
        lines = "".join(json.dumps(self._batch_line(key, method, route, r), ensure_ascii=False) + "\n" for key, r in items)
        uploaded = self._batch_http(
            "POST",
            "/files",
            data={"purpose": "batch"},
            files={"file": (f"{label}.jsonl", lines.encode("utf-8"), "application/jsonl")},
        )
        endpoint = "/v1/chat/completions" if route == "chat" else "/v1/completions"
        job = self._batch_http(
            "POST",
            "/batches",
            json={
                "input_file_id": uploaded["id"],
                "endpoint": endpoint,
                "completion_window": "24h",
                "metadata": {"gecko_distill_label": label},
            },
        )
        return str(job["id"])

    def batch_find(self, label: str) -> str | None:
        after: str | None = None
        while True:
            page = self._batch_http("GET", "/batches", params={"limit": 100, **({"after": after} if after else {})})
            for job in page.get("data") or []:
                if (job.get("metadata") or {}).get("gecko_distill_label") == label:
                    return str(job["id"])
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]

    def batch_status(self, name: str) -> Any:
        from .batch import BatchStatus

        job = self._batch_http("GET", f"/batches/{name}")
        counts = job.get("request_counts") or {}
        errors = ((job.get("errors") or {}).get("data") or []) if isinstance(job.get("errors"), dict) else []
        message = "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))[:300]
        return BatchStatus(
            state=self._BATCH_STATES.get(str(job.get("status")), "running"),
            completed=(counts.get("completed") or 0) + (counts.get("failed") or 0) if counts else None,
            total=counts.get("total"),
            message=self._runner.redact(message),
        )

    def batch_results(self, name: str, method: str, requests: Mapping[str, Any]) -> dict[str, Any]:
        """The answers of a finished job by cache key, from its output and error files (an
        expired or cancelled job keeps the answers it had finished)."""
        job = self._batch_http("GET", f"/batches/{name}")
        out: dict[str, Any] = {}
        for file_id in (job.get("output_file_id"), job.get("error_file_id")):
            if not file_id:
                continue
            for line in self._batch_http("GET", f"/files/{file_id}/content", raw=True).splitlines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    logger.warning("%s: batch %s: an output line is not JSON: %r", self.name, name, line[:80])
                    continue
                key = item.get("custom_id")
                if key in requests and key not in out:
                    out[key] = self._batch_answer(method, requests[key], item)
        return out

    def _batch_answer(self, method: str, request: Any, item: dict[str, Any]) -> Any:
        """One output line as a result (with ``error`` set when the item failed)."""
        fail = Generation if method == "generate" else Score
        response, error = item.get("response") or {}, item.get("error")
        status, body = response.get("status_code"), response.get("body")
        try:
            if error:
                raise RequestFailure(
                    str(error.get("code") or "batch_item_error"), str(error.get("message") or error), retryable=True
                )
            if status != 200 or not isinstance(body, dict):
                message = ((body or {}).get("error") or {}).get("message", "") if isinstance(body, dict) else str(body)[:200]
                if status == 400 and _SAFETY_HINT.search(message or ""):
                    raise RequestFailure("safety_blocked", message, retryable=False)
                raise status_failure(int(status or 0), message or "no message")
            if method == "generate":
                return self._generation_of(request, body).result
            if request.continuation:
                return self._echo_score_of(request, body).result
            return self._choices_score_of(request, body).result
        except RequestFailure as exc:
            return fail(error=self._runner.redact(f"{exc.reason}: {exc.detail}"))
        except _Unsupported as exc:
            return fail(error=self._runner.redact(f"unsupported: {exc}"))

    def _batch_http(self, verb: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        """One synchronous call of the files or batches API; failures become :class:`RequestFailure`."""
        with _transport_errors(), self._httpx.Client(timeout=max(self.options.timeout_s, 120.0)) as client:
            response = client.request(verb, self.base_url + path, headers=self._headers, **kwargs)
            content = response.content
        if response.status_code != 200:
            raise self._status_failure(response, probing=False)
        if raw:
            return content.decode("utf-8", errors="replace")
        return _json_object(content)

    # -- HTTP ----------------------------------------------------------------------------
    async def _complete(self, prompt: str, payload: dict[str, Any], *, api: str, probing: bool = False) -> dict[str, Any]:
        path, body = self._body(prompt, payload, api)
        return await self._post(path, body, probing=probing)

    def _body(self, prompt: str, payload: dict[str, Any], api: str) -> tuple[str, dict[str, Any]]:
        """The path (below the base URL) and JSON body of a completion request."""
        body = {"model": self.model, **self.options.extra_body, **payload}
        if api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            return "/chat/completions", body
        body["prompt"] = prompt
        return "/completions", body

    async def _post(self, path: str, body: dict[str, Any], *, probing: bool) -> dict[str, Any]:
        client = self._client()
        with _transport_errors():
            response = await client.post(self.base_url + path, json=body, headers=self._headers)
            raw = response.content
        if response.status_code != 200:
            raise self._status_failure(response, probing=probing)
        return _json_object(raw)

    def _status_failure(self, response: Any, *, probing: bool) -> Exception:
        status = response.status_code
        message = _error_message(response)
        if status == 400 and _SAFETY_HINT.search(message):
            return RequestFailure("safety_blocked", message, retryable=False)
        if probing and status in (400, 404, 422, 501) and (status == 404 or _UNSUPPORTED_HINT.search(message)):
            return _Unsupported(f"HTTP {status}: {message}")
        return status_failure(status, message, parse_retry_after(response.headers.get("retry-after")))

    def _client(self) -> Any:
        """The HTTP client of the running event loop (one per loop, made on first use)."""
        import asyncio

        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            httpx = self._httpx
            limits = httpx.Limits(max_connections=self.options.concurrency, max_keepalive_connections=self.options.concurrency)
            # Our own timeout (asyncio) fires first; this one is a backstop.
            client = httpx.AsyncClient(timeout=self.options.timeout_s + 5, limits=limits)
            self._clients = {loop_id: client}
        return client

    async def _aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


def _http_client_module() -> Any:
    """``httpx2`` when installed (a drop-in fork of httpx whose connection pool costs about a
    third of the CPU per request at high concurrency; google-genai brings it), else ``httpx``."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        return require("httpx", INSTALL_HINT)


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RequestFailure("missing_field", "the response has no choices", retryable=False)
    choice = choices[0]
    if choice.get("finish_reason") == "content_filter":
        raise RequestFailure("safety_blocked", "the answer was filtered (finish_reason=content_filter)", retryable=False)
    return choice


def _choice_text(choice: dict[str, Any], api: str) -> str:
    text = (choice.get("message") or {}).get("content") if api == "chat" else choice.get("text")
    if not isinstance(text, str):
        raise RequestFailure(
            "missing_field", f"the choice has no {'message content' if api == 'chat' else 'text'}", retryable=False
        )
    return text


def _echo_logprobs(choice: dict[str, Any], prompt: str, request: ScoreRequest) -> tuple[float, int, list[tuple[str, float]]]:
    """(continuation logprob, its token count, top candidates of the next token) from an echo."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        raise _Unsupported("the server returned no logprobs for the prompt (echo is not supported)")
    tokens, values, offsets = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
    tops = lp.get("top_logprobs") or []
    if not tokens or not isinstance(values, list) or not isinstance(offsets, list) or len(offsets) != len(values):
        raise _Unsupported("the logprobs have no tokens with offsets (echo is not supported)")
    if not str(choice.get("text", "")).startswith(prompt) or offsets[0] != 0:
        raise _Unsupported("the answer does not echo the prompt with its logprobs (echo is ignored by this server)")
    start, end = len(request.context), len(request.context) + len(request.continuation)
    ends = list(offsets[1:]) + [len(choice.get("text") or prompt)]
    picked = [i for i, (a, b) in enumerate(zip(offsets, ends)) if a < end and b > start and a < len(prompt)]
    if not picked or any(values[i] is None for i in picked):
        raise RequestFailure("missing_field", "no logprobs for the continuation's tokens", retryable=False)
    after = [i for i, o in enumerate(offsets) if o >= len(prompt)]
    next_top = tops[after[0]] if after and after[0] < len(tops) and isinstance(tops[after[0]], dict) else {}
    return float(sum(values[i] for i in picked)), len(picked), [(t, float(v)) for t, v in next_top.items() if v is not None]


def _next_token_top(choice: dict[str, Any], api: str) -> list[tuple[str, float]]:
    """Top candidates of the first generated token, from a chat or completions answer."""
    lp = choice.get("logprobs")
    if api == "chat":
        content = lp.get("content") if isinstance(lp, dict) else None
        if not content or not isinstance(content[0], dict) or not content[0].get("top_logprobs"):
            raise _Unsupported("the chat answer has no top_logprobs")
        return [(e["token"], float(e["logprob"])) for e in content[0]["top_logprobs"] if e.get("logprob") is not None]
    tops = lp.get("top_logprobs") if isinstance(lp, dict) else None
    if not tops or not isinstance(tops[0], dict):
        raise _Unsupported("the completion has no top_logprobs")
    return [(t, float(v)) for t, v in tops[0].items() if v is not None]


def _usage_of(data: dict[str, Any]) -> tuple[int, int]:
    usage = data.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _error_message(response: Any) -> str:
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message[:300]
    except ValueError:
        pass
    return (response.text or response.reason_phrase or "")[:300]


def _json_object(body: bytes) -> dict[str, Any]:
    """A response body that must be a JSON object; anything else is a retryable ``bad_response``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise RequestFailure("bad_response", f"the body is not JSON: {body[:80]!r}", retryable=True) from None
    if not isinstance(data, dict):
        raise RequestFailure("bad_response", f"the body is not a JSON object: {body[:80]!r}", retryable=True)
    return data


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Connection errors and timeouts inside become :class:`RequestFailure` (others propagate)."""
    try:
        yield
    except Exception as exc:
        failure = transport_failure(exc)
        if failure is None:
            raise
        raise failure from None
