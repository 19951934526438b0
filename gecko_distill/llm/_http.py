"""Shared machinery of the HTTP backends: concurrency, rate limits, retries, failure accounting.

The :class:`~gecko_distill.llm.LLM` Protocol is synchronous and batched; an HTTP backend turns
each item of a batch into a :class:`Job` and hands the jobs to an :class:`AsyncRunner`, which
runs them concurrently on its own event loop (a daemon thread, so it also works when the
caller is itself inside an event loop, e.g. a notebook) and yields each result as soon as it
is ready. Each job:

1. waits for a global pause (set by a 429 with ``Retry-After``), then for the
   requests-per-minute and tokens-per-minute buckets;
2. takes one of ``concurrency`` slots and runs one attempt, bounded by ``timeout_s``;
3. on a retryable failure (408, 429, 500, 502, 503, 504, timeouts, dropped connections,
   truncated or non-JSON bodies) sleeps with exponential backoff and jitter, never less than
   the server's ``Retry-After``, and tries again, up to ``max_attempts``;
4. on a final failure becomes that item's result with ``error = "<reason>: <detail>"``, so
   the run goes on and the item is counted as a skip upstream.

Credentials never reach a log line or an error text: every message is passed through
:meth:`AsyncRunner.redact`, and :func:`install_url_redaction` (called by every HTTP backend)
rewrites credentials in URLs (``user:password@``, ``?key=…``) in the log records of the HTTP
client libraries and of this package's backends, which log request URLs at ``-v``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import queue
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import GeckoDistillError
from .base import Generation, GenerationRequest, Score, ScoreRequest, UnsupportedCapabilityError
from .cost import Usage, UsageTracker

__all__ = [
    "APIBackend",
    "ClientOptions",
    "RequestFailure",
    "Answer",
    "Job",
    "AsyncRunner",
    "RETRYABLE_STATUSES",
    "parse_retry_after",
    "status_failure",
    "estimate_tokens",
    "transport_failure",
    "match_choices",
    "resolve_key",
    "MissingCredentialsError",
    "in_order",
    "sample_seed",
    "redact_urls",
    "install_url_redaction",
    "url_userinfo",
    "without_userinfo",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: HTTP statuses that are retried.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ClientOptions(BaseModel):
    """Transport settings shared by the HTTP backends.

    Attributes:
        concurrency: Requests in flight at once.
        requests_per_minute: Request rate limit (``None``: unlimited). Requests are paced
            smoothly, with at most one second's worth sent in a burst.
        tokens_per_minute: Token rate limit (``None``: unlimited). A request reserves an
            estimate (prompt characters / 4 + the completion budget) and is corrected with
            the usage the server reports.
        timeout_s: Longest wait for one attempt; a slower answer is a ``timeout`` and retried.
        max_attempts: Attempts per item, the first included.
        backoff_initial_s: Wait before the first retry; doubles (``backoff_multiplier``) after
            each further failure, up to ``backoff_max_s``.
        backoff_max_s: Cap of the exponential backoff.
        backoff_multiplier: Growth factor of the backoff.
        backoff_jitter: Share of the backoff that is random (0: none; 0.5: the wait is drawn
            from [0.5, 1] × the backoff). A server's ``Retry-After`` is always waited in full.
        max_retry_after_s: A ``Retry-After`` longer than this (a daily quota, say) ends the
            item's retries at once instead of stalling the run.

    Example:
        >>> ClientOptions(concurrency=16, requests_per_minute=600).timeout_s
        60.0
        >>> ClientOptions(concurency=16)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for ClientOptions
        ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=1024)
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_initial_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    backoff_jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after_s: float = Field(default=300.0, ge=0)


class MissingCredentialsError(GeckoDistillError, ValueError):
    """No API key was given and none is set in the environment."""


def resolve_key(
    api_key: str | None, api_key_env: str | None, default_envs: Sequence[str], *, what: str, required: bool = True
) -> str | None:
    """The API key: ``api_key`` itself, else the variable named ``api_key_env``, else the first
    of ``default_envs`` that is set.

    Raises:
        MissingCredentialsError: ``required`` (or ``api_key_env`` was named) and no key was found.
    """
    if api_key:
        return api_key
    names = [api_key_env] if api_key_env else list(default_envs)
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if required or api_key_env:
        raise MissingCredentialsError(f"no {what}: set the environment variable {' or '.join(names) or '?'} (or pass api_key=)")
    return None


_USERINFO = re.compile(r"(?<=://)[^/\s@?#]+@")
_KEY_PARAM = re.compile(
    r"([?&](?:key|api[_-]?key|apikey|access[_-]?token|token|secret|password|sig|signature)=)[^&\s#'\"]+", re.IGNORECASE
)


def url_userinfo(url: str) -> list[str]:
    """The user and password of a URL such as ``http://user:pw@host/v1`` (to redact them).

    Example:
        >>> url_userinfo("http://user:s3cret@host:8000/v1"), url_userinfo("http://host/v1")
        (['user', 's3cret'], [])
    """
    match = re.search(r"//([^/@]*)@", url)
    return [part for part in match.group(1).split(":", 1) if len(part) > 2] if match else []


def without_userinfo(url: str) -> str:
    """Drop ``user:password@`` from a URL, so it can be shown.

    Example:
        >>> without_userinfo("http://user:s3cret@host:8000/v1")
        'http://host:8000/v1'
    """
    return re.sub(r"//[^/@]*@", "//", url)


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: the user and
    password (``scheme://***@host``) and key-like query parameters (``?key=***``).

    Example:
        >>> redact_urls("POST http://user:s3cret@127.0.0.1:8000/v1/completions 200")
        'POST http://***@127.0.0.1:8000/v1/completions 200'
        >>> redact_urls("GET https://host/v1beta/models?key=AIza123&alt=sse")
        'GET https://host/v1beta/models?key=***&alt=sse'
    """
    if "@" not in text and "=" not in text:
        return text
    return _KEY_PARAM.sub(r"\1***", _USERINFO.sub("***@", text))


class _URLRedactor(logging.Filter):
    """Rewrites a record's message with :func:`redact_urls` (the record is always kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_URL_REDACTOR = _URLRedactor()
#: Loggers that may log a request URL. A filter on a logger does not see its children's
#: records, so every logger is named; names under these prefixes that already exist are
#: covered too.
_URL_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "google_genai",
    *(
        f"{lib}.{part}"
        for lib in ("httpcore", "httpcore2")
        for part in ("connection", "connection_pool", "http11", "http2", "proxy", "socks")
    ),
    "google_genai._api_client",
    "google_genai.models",
    "google_genai._common",
    __name__,
    f"{__package__}.gemini",
    f"{__package__}.openai_compat",
    f"{__package__}.cache",
)


def install_url_redaction() -> None:
    """Add the URL-credential filter to every logger that may log a request URL (idempotent).

    Called by each HTTP backend when it is made, so that ``-v`` (``httpx`` logs every request
    URL at INFO) never shows ``http://user:KEY@host`` or ``?key=KEY``.
    """
    names = set(_URL_LOGGERS)
    prefixes = tuple(f"{name}." for name in ("httpx", "httpx2", "httpcore", "httpcore2", "google_genai"))
    names.update(name for name in list(logging.root.manager.loggerDict) if name.startswith(prefixes))
    for name in names:
        target = logging.getLogger(name)
        if _URL_REDACTOR not in target.filters:
            target.addFilter(_URL_REDACTOR)


class RequestFailure(Exception):
    """One failed attempt, classified.

    Args:
        reason: Short code, e.g. ``"http_503"``, ``"timeout"``, ``"safety_blocked"``.
        detail: Human-readable detail (redacted before it is logged or stored).
        retryable: Whether another attempt may succeed.
        retry_after: Seconds the server asked us to wait, if it did.
    """

    def __init__(self, reason: str, detail: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date).

    Example:
        >>> parse_retry_after("1.5"), parse_retry_after(None), parse_retry_after("soon")
        (1.5, None, None)
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=0.0)
        60.0
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_failure(status: int, message: str, retry_after: float | None = None) -> RequestFailure:
    """The :class:`RequestFailure` for an HTTP error status.

    Example:
        >>> f = status_failure(429, "slow down", retry_after=2.0)
        >>> f.reason, f.retryable, f.retry_after
        ('http_429', True, 2.0)
    """
    return RequestFailure(
        f"http_{status}", message or "no message", retryable=status in RETRYABLE_STATUSES, retry_after=retry_after
    )


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A successful attempt: the item's result and the tokens it used."""

    result: T
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Job(Generic[T]):
    """One item of a batch.

    Attributes:
        call: Runs one attempt; returns an :class:`Answer` or raises :class:`RequestFailure`
            (or :class:`UnsupportedCapabilityError`, which ends the whole batch).
        fail: Builds the item's result from an error text after its last attempt.
        tokens: Estimated tokens, reserved against ``tokens_per_minute``.
    """

    call: Callable[[], Awaitable[Answer[T]]]
    fail: Callable[[str], T]
    tokens: int = 0


class _Bucket:
    """Token bucket refilled at ``per_minute / 60`` per second; waiters are served in order."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # at most one second's worth at once
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        async with self.lock:
            need = min(amount, self.capacity)  # a large request waits for a full bucket, then overdraws
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def adjust(self, extra: float) -> None:
        """Charge ``extra`` more (or refund, if negative) once the real usage is known."""
        self._refill()
        self.level = min(self.capacity, self.level - extra)


class _LoopState:
    """Event loop (on a daemon thread) with the limits that belong to it."""

    def __init__(self, options: ClientOptions, name: str):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"gecko-distill-{name}", daemon=True)
        self.thread.start()
        self.slots = asyncio.Semaphore(options.concurrency)
        self.rpm = _Bucket(options.requests_per_minute) if options.requests_per_minute else None
        self.tpm = _Bucket(options.tokens_per_minute) if options.tokens_per_minute else None
        self.paused_until = 0.0  # time.monotonic() before which no request starts

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive() and not self.loop.is_closed()


class AsyncRunner:
    """Run a batch's jobs concurrently under the limits of :class:`ClientOptions`.

    Args:
        options: Concurrency, rate limits, timeout and retry settings.
        usage: Counters to update (requests, retries, failures by reason, tokens).
        name: Used in the event-loop thread's name and in log lines.
        secrets: Strings (API keys) that are replaced by ``***`` in every message.

    Example:
        >>> from gecko_distill.llm._http import Answer, AsyncRunner, ClientOptions, Job
        >>> from gecko_distill.llm.cost import UsageTracker
        >>> async def double(x):
        ...     return Answer(2 * x)
        >>> runner = AsyncRunner(ClientOptions(concurrency=4), UsageTracker())
        >>> runner.run_all([Job(call=lambda x=x: double(x), fail=lambda e: None) for x in range(5)])
        [0, 2, 4, 6, 8]
        >>> runner.close()
    """

    def __init__(self, options: ClientOptions, usage: UsageTracker, *, name: str = "llm", secrets: Sequence[str] = ()):
        self.options = options
        self.usage = usage
        self.name = name
        self._secrets = [s for s in secrets if s]
        self._state: _LoopState | None = None
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Awaitable[None]]] = []

    # -- public ------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's event loop (started on first use, and again after a fork)."""
        return self._live_state().loop

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine function run on the loop by :meth:`close` (e.g. closing a client)."""
        self._closers.append(closer)

    def redact(self, text: str) -> str:
        """``text`` with every secret, and the credentials of every URL, replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_urls(text)

    def run(self, jobs: Sequence[Job[T]]) -> Iterator[tuple[int, T]]:
        """Yield ``(index, result)`` for every job, in the order they finish.

        Raises:
            UnsupportedCapabilityError: A job found that the backend cannot do what was asked;
                the jobs still running are cancelled.
        """
        if not jobs:
            return
        state = self._live_state()
        results: queue.SimpleQueue = queue.SimpleQueue()
        finished = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self._run_all(state, jobs, results, finished), state.loop)
        remaining = len(jobs)
        try:
            while remaining:
                try:
                    kind, index, value = results.get(timeout=0.2)  # stays responsive to Ctrl-C
                except queue.Empty:
                    if future.done() and not future.cancelled() and future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]
                    continue
                if kind == "fatal":
                    raise value
                remaining -= 1
                yield index, value
            future.result(timeout=10)  # every job has reported; let the batch task finish
        finally:
            if not future.done():
                future.cancel()  # stops the jobs still running (e.g. after UnsupportedCapabilityError)
                finished.wait(timeout=10)

    def run_all(self, jobs: Sequence[Job[T]]) -> list[T]:
        """Run every job and return the results in the jobs' order."""
        out: list = [None] * len(jobs)
        for index, result in self.run(jobs):
            out[index] = result
        return out

    def close(self) -> None:
        """Run the registered closers and stop the event loop."""
        with self._lock:
            state, self._state = self._state, None
        if state is None or not state.alive():
            return
        for closer in self._closers:
            try:
                asyncio.run_coroutine_threadsafe(closer(), state.loop).result(timeout=5)
            except Exception as exc:  # closing is best effort
                logger.debug("closing %s: %s", self.name, exc)
        state.loop.call_soon_threadsafe(state.loop.stop)
        state.thread.join(timeout=5)
        if not state.thread.is_alive():
            state.loop.close()

    # -- internals ---------------------------------------------------------------------
    def _live_state(self) -> _LoopState:
        with self._lock:
            if self._state is None or not self._state.alive():
                self._state = _LoopState(self.options, self.name)
            return self._state

    async def _run_all(
        self, state: _LoopState, jobs: Sequence[Job[T]], results: queue.SimpleQueue, finished: threading.Event
    ) -> None:
        async def one(index: int, job: Job[T]) -> None:
            try:
                results.put(("ok", index, await self._run_job(state, job)))
            except UnsupportedCapabilityError as exc:
                results.put(("fatal", index, exc))

        tasks = [asyncio.ensure_future(one(i, job)) for i, job in enumerate(jobs)]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # let every job unwind
            raise
        finally:
            finished.set()

    async def _run_job(self, state: _LoopState, job: Job[T]) -> T:
        opts = self.options
        for attempt in range(1, opts.max_attempts + 1):
            await self._wait_for_turn(state, job.tokens)
            try:
                async with state.slots:
                    self.usage.add(requests=1)
                    answer = await asyncio.wait_for(job.call(), timeout=opts.timeout_s)
            except asyncio.TimeoutError:
                failure = RequestFailure("timeout", f"no answer within {opts.timeout_s:g}s", retryable=True)
            except RequestFailure as exc:
                failure = exc
            except UnsupportedCapabilityError:
                raise
            except Exception as exc:  # a bug or an unforeseen library error: this item only
                logger.debug("%s: unexpected error", self.name, exc_info=True)
                failure = RequestFailure("error", f"{type(exc).__name__}: {exc}", retryable=False)
            else:
                self._account(state, job, answer)
                return answer.result
            delay = self._retry_delay(state, failure, attempt)
            if delay is None:
                return self._give_up(job, failure, attempt)
            self.usage.retry(failure.reason)
            logger.info("%s: %s; retry %d in %.2fs", self.name, self.redact(str(failure)), attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_for_turn(self, state: _LoopState, tokens: int) -> None:
        while (wait := state.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if state.rpm is not None:
            await state.rpm.take(1)
        if state.tpm is not None:
            await state.tpm.take(max(tokens, 1))

    def _account(self, state: _LoopState, job: Job, answer: Answer) -> None:
        used = answer.prompt_tokens + answer.completion_tokens
        if state.tpm is not None and used:
            state.tpm.adjust(used - max(job.tokens, 1))
        self.usage.add(items=1, prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens)

    def _retry_delay(self, state: _LoopState, failure: RequestFailure, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        opts = self.options
        if not failure.retryable or attempt >= opts.max_attempts:
            return None
        backoff = min(opts.backoff_max_s, opts.backoff_initial_s * opts.backoff_multiplier ** (attempt - 1))
        backoff *= 1.0 - opts.backoff_jitter * random.random()
        if failure.retry_after is None:
            return backoff
        if failure.retry_after > opts.max_retry_after_s:
            failure.detail += f" (Retry-After {failure.retry_after:g}s exceeds max_retry_after_s)"
            return None
        if failure.reason == "http_429":  # the whole client slows down, not just this item
            state.paused_until = max(state.paused_until, time.monotonic() + failure.retry_after)
        # Never earlier than asked; a little jitter on top so retries do not arrive together.
        return failure.retry_after + min(backoff, 0.1 * failure.retry_after + 0.05) * random.random()

    def _give_up(self, job: Job[T], failure: RequestFailure, attempt: int) -> T:
        self.usage.failure(failure.reason)
        tries = f" after {attempt} attempts" if attempt > 1 else ""
        error = self.redact(f"{failure.reason}: {failure.detail}{tries}")
        logger.warning("%s: item failed: %s", self.name, error)
        return job.fail(error)


def estimate_tokens(text: str, completion_budget: int) -> int:
    """Rough token estimate for the tokens-per-minute limit: 4 characters per token."""
    return len(text) // 4 + completion_budget


_TRANSPORT_MODULES = {"httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "h11", "ssl"}


def transport_failure(exc: BaseException) -> RequestFailure | None:
    """Classify an exception raised below the API layer (socket, HTTP client, JSON decoding).

    Returns ``None`` for exceptions that are not transport problems.

    Example:
        >>> transport_failure(json.JSONDecodeError("Expecting value", "<html>", 0)).reason
        'bad_response'
        >>> transport_failure(ConnectionRefusedError("refused")).reason
        'connection_error'
        >>> transport_failure(KeyError("x")) is None
        True
    """
    names = [cls.__name__ for cls in type(exc).__mro__]
    detail = f"{type(exc).__name__}: {exc}"
    if any("Timeout" in name for name in names) or isinstance(exc, TimeoutError):
        return RequestFailure("timeout", detail, retryable=True)
    if "RemoteProtocolError" in names or "IncompleteRead" in names or "ClientPayloadError" in names:
        return RequestFailure("truncated_response", detail, retryable=True)
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)) or "UnknownApiResponseError" in names:
        return RequestFailure("bad_response", detail, retryable=True)
    root = type(exc).__module__.split(".", 1)[0]
    if root in _TRANSPORT_MODULES or isinstance(exc, (ConnectionError, OSError)):
        return RequestFailure("connection_error", detail, retryable=True)
    return None


def match_choices(choices: Sequence[str], top: Sequence[tuple[str, float]]) -> tuple[float, ...]:
    """Log-probability of each choice from the top candidates of the first output token.

    A choice collects every listed token equal to it up to case and surrounding whitespace
    (an API may list ``"Yes"`` or ``"yes"`` where a local tokenizer has ``" Yes"``): their
    probabilities add up, as they are different ways of giving the same answer. A choice that
    is not listed gets an upper bound: the mass left over by the listed tokens, and no more
    than the least likely of them.

    Example:
        >>> import math
        >>> yes, no = match_choices([" Yes", " No"], [("Yes", math.log(0.7)), (" yes", math.log(0.1)), ("no", math.log(0.15))])
        >>> round(math.exp(yes), 3), round(math.exp(no), 3)
        (0.8, 0.15)
        >>> round(math.exp(match_choices([" Maybe"], [("Yes", math.log(0.9)), ("No", math.log(0.08))])[0]), 3)
        0.02
    """
    return _match_choices(choices, top)[0]


def _match_choices(choices: Sequence[str], top: Sequence[tuple[str, float]]) -> tuple[tuple[float, ...], int]:
    """:func:`match_choices`, and how many of the choices were listed."""
    if not top:
        raise ValueError("no top candidates to read choices from")
    listed_mass = sum(math.exp(lp) for _, lp in top)
    floor = min(min(lp for _, lp in top), math.log(max(1.0 - listed_mass, 1e-12)))
    out, listed = [], 0
    for choice in choices:
        key = choice.strip().casefold()
        if key:
            same = [lp for token, lp in top if token.strip().casefold() == key]
        else:
            same = [lp for token, lp in top if token == choice]
        out.append(_logsumexp(same) if same else floor)
        listed += bool(same)
    return tuple(out), listed


def _logsumexp(values: Sequence[float]) -> float:
    peak = max(values)
    return peak + math.log(sum(math.exp(v - peak) for v in values))


def in_order(n: int, results: Iterable[tuple[int, T]]) -> list[T]:
    """Put ``(index, result)`` pairs, which arrive in any order, back in index order."""
    out: list = [None] * n
    for index, result in results:
        out[index] = result
    return out


def sample_seed(prompt: str, sample_index: int) -> int:
    """A stable 31-bit seed per (prompt, sample), so repeated samples differ but reruns agree."""
    digest = hashlib.sha256(f"{sample_index}\x00{prompt}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


class APIBackend:
    """What the HTTP backends share: batched calls answered in order from their ``iter_*``
    methods, usage counters, run-summary notes, and the event-loop runner's lifetime.

    Subclasses set ``_runner``, ``_usage`` and ``_notes`` and implement ``iter_generate`` and
    ``iter_score`` (which yield ``(index, result)`` as items finish, and raise
    :class:`UnsupportedCapabilityError` for what the API cannot do).
    """

    _runner: AsyncRunner
    _usage: UsageTracker
    _notes: list[str]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer each request, in order; failed items carry ``error``."""
        return in_order(len(requests), self.iter_generate(requests))  # type: ignore[attr-defined]

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        """Score each request, in order (see the subclass's ``iter_score`` for what it can score)."""
        return in_order(len(requests), self.iter_score(requests))  # type: ignore[attr-defined]

    @property
    def notes(self) -> list[str]:
        """Things a run summary should say about this backend (e.g. a relevance fallback, or
        answers whose top tokens listed none of the choices)."""
        missing = self._usage.snapshot().choices_missing
        if missing:
            return [*self._notes, _choices_missing_note(self.name, missing)]
        return list(self._notes)

    @property
    def usage(self) -> Usage:
        """Requests, retries, failures by reason and tokens so far (see :class:`~gecko_distill.llm.cost.Usage`)."""
        return self._usage.snapshot()

    def close(self) -> None:
        """Close the HTTP connections and stop the event-loop thread."""
        self._runner.close()

    def _note(self, note: str) -> None:
        self._notes.append(note)
        logger.warning(note)

    def _choice_logprobs(self, choices: Sequence[str], top: Sequence[tuple[str, float]]) -> tuple[float, ...]:
        """:func:`match_choices`, counting (and, the first time, logging) an answer whose top
        tokens list none of the choices: every choice then has the same floor value, so the
        candidates it ranks tie."""
        logprobs, listed = _match_choices(choices, top)
        if choices and not listed:
            self._usage.add(choices_missing=1)
            if not getattr(self, "_warned_choices_missing", False):
                self._warned_choices_missing = True
                logger.warning(
                    "%s: a relevance answer listed none of the choices %s among its top tokens (%s): they got the "
                    "same floor log-probability, so its candidates tie on relevance; such answers are counted "
                    "in the run summary's notes",
                    self.name,
                    ", ".join(repr(c) for c in choices),
                    self._runner.redact(", ".join(repr(token) for token, _ in top[:5])),
                )
        return logprobs


def _choices_missing_note(name: str, count: int) -> str:
    return (
        f"{name}: {count} relevance answer(s) listed none of the choices among their top tokens; "
        "the choices got the same floor log-probability there, so those candidates tie on relevance"
    )
