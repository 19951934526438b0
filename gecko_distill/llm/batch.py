"""Provider batch APIs: send a stage's LLM requests as batch jobs, at half price, into the LLM cache.

Gemini (``client.batches.create`` with inline requests) and OpenAI-compatible servers
(``/v1/files`` + ``/v1/batches``) answer large sets of requests within a day at about half
the price of online calls. :class:`BatchCachedLLM` is a :class:`~gecko_distill.llm.CachedLLM`
that can *prefetch* a list of requests through such a job:

1. The requests that miss the cache (keyed by :func:`~gecko_distill.llm.request_key`, as every
   answer is) and are not already in a job are submitted, split into jobs of at most the
   provider's size. The journal records each job (its label before, its name after the
   provider accepts it, and the cache keys it holds) before anything else happens.
2. The jobs are polled, with a growing interval (:class:`BatchOptions`) and a progress bar.
3. Each finished job's answers are written into the cache. The stage then runs as usual and
   finds them there: its calls are cache hits.

**Resuming.** A killed run resumes the jobs of its journal and submits none of them again. A
job whose submission was cut off before its name was recorded is looked up by its label at
the provider. Answers in the cache are never asked again.

**Faults.** An item that fails in a job, or is missing from its output, and every item of a job
that failed, expired or was cancelled, is counted, logged and resubmitted in a new job
(``resubmit`` times, default once). What is still unanswered after that is left to the normal
online path, which asks it (and retries it) like any cache miss. Items refused for good
(``safety_blocked``, ``invalid_output``...) go straight to the online path, which records
them as skips. Nothing is dropped silently: :class:`BatchReport` counts each case.

**Cost.** The tokens of batch answers are priced at the batch price
(:func:`~gecko_distill.llm.cost.estimate_cost` with ``batch=True``): see :meth:`BatchCachedLLM.batch_stats`.

Credentials are never written: the journal holds job names, labels and cache keys only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._io import _short, progress
from ..errors import GeckoDistillError, InputError
from .base import LLM, Generation, GenerationRequest, Score, ScoreRequest
from .cache import CachedLLM, request_key
from .cost import error_reason, estimate_cost

__all__ = [
    "BatchOptions",
    "BatchStatus",
    "BatchReport",
    "BatchBackend",
    "BatchCachedLLM",
    "BatchJournal",
    "BatchPendingError",
    "PERMANENT_REASONS",
    "batch_capable",
    "batch_backends",
]

logger = logging.getLogger(__name__)

Method = Literal["generate", "score"]
Request = GenerationRequest | ScoreRequest
Result = Generation | Score

#: Item error reasons that another try will not change: left to the online path (which records
#: the skip) instead of being resubmitted.
PERMANENT_REASONS = frozenset({"safety_blocked", "invalid_output", "missing_field", "unsupported"})

_RESULT_TYPES: dict[str, type] = {"generate": Generation, "score": Score}

_MAX_PROBES = 3  # online requests one prefetch may send to learn what the server supports

_sleep = time.sleep  # the wait between polls, looked up at each wait (tests replace it)


class BatchOptions(BaseModel):
    """How batch jobs are sized, polled and retried.

    Attributes:
        poll_interval_s: Wait before the first poll of the jobs.
        poll_max_interval_s: The wait grows by ``poll_multiplier`` after each poll, up to this.
        poll_multiplier: Growth factor of the wait between polls.
        max_wait_s: Stop waiting after this long and raise :class:`BatchPendingError`; the jobs
            stay recorded, and a rerun resumes them (nothing is sent online for them, so
            nothing is paid twice). ``None``: wait until they finish (the providers end a job
            within 24 to 48 hours).
        resubmit: How many times an item that failed in a job (or a job that failed, expired or
            came back in part) is sent again, in a new job, before it is left to the online path.
        max_requests_per_job: Requests per job at most; default: the provider's limit.
        max_job_bytes: Size of one job's requests at most (estimated); default: the provider's limit.
        min_requests: Fewer cache misses than this go online instead (a batch job takes minutes
            at the least).

    Example:
        >>> BatchOptions(poll_interval_s=5).poll_max_interval_s
        600.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval_s: float = Field(default=30.0, ge=0)
    poll_max_interval_s: float = Field(default=600.0, ge=0)
    poll_multiplier: float = Field(default=1.5, ge=1)
    max_wait_s: float | None = Field(default=None, gt=0)
    resubmit: int = Field(default=1, ge=0)
    max_requests_per_job: int | None = Field(default=None, ge=1)
    max_job_bytes: int | None = Field(default=None, ge=1)
    min_requests: int = Field(default=1, ge=1)


class BatchStatus(BaseModel):
    """Where a batch job stands, as a provider reports it.

    Attributes:
        state: ``pending``/``running`` (not done), or ``succeeded``, ``failed``, ``expired``,
            ``cancelled`` (done; the last three may still hold some answers).
        completed: Requests finished so far, when the provider says.
        total: Requests in the job, when the provider says.
        message: The provider's error text for a failed job.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: Literal["pending", "running", "succeeded", "failed", "expired", "cancelled"]
    completed: int | None = None
    total: int | None = None
    message: str = ""

    @property
    def done(self) -> bool:
        return self.state not in ("pending", "running")


class BatchReport(BaseModel):
    """What one :meth:`BatchCachedLLM.prefetch` did (all counts are distinct requests).

    Attributes:
        method: ``"generate"`` or ``"score"``.
        requests: Requests listed.
        cached: Already in the cache before anything was sent.
        unsupported: Not sent in a batch (the provider's batch API cannot do them): left online.
        submitted: Requests sent in new jobs (resubmissions included).
        resubmitted: Of those, requests sent again after a failed, missing or expired answer.
        jobs_submitted: New jobs.
        jobs_resumed: Jobs of an earlier run that were polled to the end.
        answered: Answers written into the cache.
        failed: Item failures in finished jobs, by reason.
        missing: Requests missing from a finished job's output (a job that failed or expired
            counts all the requests it did not answer).
        left_online: Requests still unanswered, left to the online path.
        prompt_tokens: Prompt tokens of the answers (billed at batch prices).
        completion_tokens: Completion tokens of the answers.
        jobs: Names of the jobs submitted or resumed.
    """

    model_config = ConfigDict(extra="forbid")

    method: str
    requests: int = 0
    cached: int = 0
    unsupported: int = 0
    submitted: int = 0
    resubmitted: int = 0
    jobs_submitted: int = 0
    jobs_resumed: int = 0
    answered: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    missing: int = 0
    left_online: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    jobs: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the run summary."""
        failed = sum(self.failed.values())
        parts = [
            f"{self.requests} {self.method} requests: {self.cached} cached, {self.submitted} sent in {self.jobs_submitted} new job(s)",
            f"{self.jobs_resumed} job(s) resumed" if self.jobs_resumed else "",
            f"{self.answered} answered",
            f"{failed} failed ({', '.join(f'{k} {v}' for k, v in sorted(self.failed.items()))})" if failed else "",
            f"{self.missing} missing" if self.missing else "",
            f"{self.resubmitted} resubmitted" if self.resubmitted else "",
            f"{self.unsupported} not batchable" if self.unsupported else "",
            f"{self.left_online} left to online calls" if self.left_online else "",
        ]
        return "batch: " + "; ".join(p for p in parts if p)


class _ProviderError(GeckoDistillError):
    """A batch API call that failed for good (``reason`` as in :func:`~gecko_distill.llm.cost.error_reason`)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class BatchPendingError(GeckoDistillError):
    """Batch jobs were still running when :attr:`BatchOptions.max_wait_s` ran out; rerun to resume them."""


@runtime_checkable
class BatchBackend(Protocol):
    """What a backend implements to be used through its provider's batch API
    (:class:`~gecko_distill.llm.gemini.GeminiLLM`, :class:`~gecko_distill.llm.openai_compat.OpenAICompatLLM`).

    Provider calls raise :class:`~gecko_distill.llm._http.RequestFailure` on failure
    (retryable ones are retried here, with the backend's backoff settings).
    """

    name: str

    def batch_route(self, method: str, request: Any) -> str | None:
        """The endpoint a request goes to in a batch (requests of one job share it); ``""``
        when it cannot go in a batch; ``None`` when that is not known until one request has
        been answered online (a capability probe)."""
        ...

    def batch_limits(self) -> tuple[int, int]:
        """(requests, bytes) one job may hold."""
        ...

    def batch_submit(self, method: str, route: str, items: Sequence[tuple[str, Any]], label: str) -> str:
        """Create a job of ``(cache key, request)`` items, named ``label`` at the provider; return its name."""
        ...

    def batch_find(self, label: str) -> str | None:
        """The name of the job created with ``label``, if the provider has one."""
        ...

    def batch_status(self, name: str) -> BatchStatus: ...

    def batch_results(self, name: str, method: str, requests: Mapping[str, Any]) -> dict[str, Any]:
        """Answers of a finished job by cache key (``requests`` in submission order); an item
        that failed has ``error`` set; an item missing from the output is left out."""
        ...


def batch_capable(llm: Any) -> bool:
    """Whether a backend (or the backend a cache wraps) can use its provider's batch API.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> batch_capable(FakeLLM())
        False
    """
    llm = getattr(llm, "llm", llm) if isinstance(llm, CachedLLM) else llm
    return all(callable(getattr(llm, name, None)) for name in ("batch_route", "batch_submit", "batch_status", "batch_results"))


def batch_backends(
    llm: LLM | None,
    scorer: LLM | None,
    out: str | Path | None,
    options: bool | BatchOptions | Mapping[str, Any] = True,
    *,
    generate: Callable[[], Sequence[GenerationRequest]] | None = None,
) -> tuple[LLM, LLM | None]:
    """The teacher and scorer of a ``batch=True`` run: each backend with a batch API becomes a
    :class:`BatchCachedLLM` on its cache in ``out`` (``llm_cache.sqlite``,
    ``scorer_cache.sqlite``); a backend without one (a local scorer) is left as it is.

    Args:
        llm: The teacher (``None``: the offline default, which has no batch API).
        scorer: The relabelling backend, or ``None`` (the teacher).
        out: The output folder.
        options: ``True``, a :class:`BatchOptions`, or a dict of its fields.
        generate: Lists the generation requests to prefetch before the teacher's first call.

    Raises:
        InputError: No output folder, bad options, or neither backend has a batch API.

    Example:
        >>> batch_backends(None, None, "runs/x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: batch=True (--llm-batch) needs a backend with a provider batch API ...
    """
    if out is None:
        raise InputError(
            "batch=True (--llm-batch) needs output_dir: batch answers land in its LLM cache, and its journal records the jobs"
        )
    if isinstance(options, BatchOptions):
        settings = options
    elif isinstance(options, Mapping):
        try:
            settings = BatchOptions.model_validate(dict(options))
        except ValidationError as exc:
            raise InputError(f"batch options: {_short(exc)}") from None
    else:
        settings = BatchOptions()
    out = Path(out)

    def wrap(backend: LLM | None, role: str, plans: dict[str, Callable[[], Sequence[Request]]]) -> LLM | None:
        if backend is None or isinstance(backend, BatchCachedLLM) or not batch_capable(backend):
            return backend
        inner = backend.llm if isinstance(backend, CachedLLM) else backend
        path = backend.path if isinstance(backend, CachedLLM) else out / f"{role}_cache.sqlite"
        return BatchCachedLLM(inner, path, options=settings, plans=plans)

    teacher = wrap(llm, "llm", {"generate": generate} if generate is not None else {})
    ranker = wrap(scorer, "scorer", {})
    if not isinstance(teacher, BatchCachedLLM) and not isinstance(ranker, BatchCachedLLM):
        what = llm.name if llm is not None else "the offline default teacher"
        raise InputError(
            f"batch=True (--llm-batch) needs a backend with a provider batch API (gemini:<model>, openai:<model>, "
            f"vllm:<model>...), not {what}"
        )
    for backend, role in ((llm, "teacher"), (scorer, "scorer")):
        if backend is not None and not batch_capable(backend):
            logger.info("batch: the %s %s has no batch API; its requests are sent online", role, backend.name)
    return teacher, ranker  # type: ignore[return-value]


# -- the journal -----------------------------------------------------------------------------
@dataclass
class _Job:
    label: str
    method: str
    route: str
    keys: list[str]
    name: str | None = None
    state: str | None = None  # set once finished
    abandoned: bool = False
    permanent: list[str] = field(default_factory=list)  # keys refused for good (not resubmitted)


class BatchJournal:
    """An append-only JSON-lines record of batch jobs, written before and after each provider call.

    Events: ``submitting`` (label, method, route, cache keys), ``submitted`` (label, job name),
    ``abandoned`` (a submission that never reached the provider), ``finished`` (job name,
    state, counts). Each line is flushed and synced before the run goes on; a partial last line
    (a run killed while writing it) is dropped on reading.

    Example:
        >>> import os, tempfile
        >>> journal = BatchJournal(os.path.join(tempfile.mkdtemp(), "jobs.jsonl"))
        >>> journal.append({"event": "submitting", "label": "l1", "method": "generate", "route": "r", "keys": ["k"]})
        >>> journal.append({"event": "submitted", "label": "l1", "job": "batches/1"})
        >>> [(j.name, j.state) for j in journal.jobs().values()]
        [('batches/1', None)]
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._jobs: dict[str, _Job] | None = None  # read once, then kept up to date by append()

    def append(self, event: dict[str, Any]) -> None:
        """Write one event durably (flushed and synced) and apply it."""
        jobs = self.jobs()
        _apply(jobs, event, self.path, 0)
        line = json.dumps({**event, "time": round(time.time(), 3)}, sort_keys=True) + "\n"
        try:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise InputError(f"{self.path}: cannot write the batch journal: {exc.strerror or exc}") from None

    def jobs(self) -> dict[str, _Job]:
        """Jobs by label, in submission order."""
        if self._jobs is None:
            jobs: dict[str, _Job] = {}
            for line_no, event in self._events():
                _apply(jobs, event, self.path, line_no)
            self._jobs = jobs
        return self._jobs

    def _events(self) -> Iterable[tuple[int, dict[str, Any]]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read the batch journal: {exc.strerror or exc}") from None
        lines = raw.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is empty, or a partial line
        if lines[-1].strip():
            logger.warning("%s: dropping a partial last line left by an interrupted run", self.path)
        for line_no, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or not isinstance(event.get("label"), str):
                    raise ValueError("not an event")
            except (ValueError, UnicodeDecodeError):
                raise InputError(
                    f"{self.path}:{line_no}: the batch journal is damaged (not a JSON event); move it away to start "
                    "a new one (jobs it records are then not resumed, and their answers are asked again)"
                ) from None
            yield line_no, event


def _apply(jobs: dict[str, _Job], event: dict[str, Any], path: Path, line_no: int) -> None:
    label, kind = event.get("label"), event.get("event")
    try:
        if kind == "submitting":
            jobs[label] = _Job(label=label, method=event["method"], route=event["route"], keys=list(event["keys"]))
        elif label in jobs and kind == "submitted":
            jobs[label].name = event["job"]
        elif label in jobs and kind == "abandoned":
            jobs[label].abandoned = True
        elif label in jobs and kind == "finished":
            jobs[label].state = event["state"]
            jobs[label].permanent = list(event.get("permanent", []))
        else:
            raise KeyError(kind)
    except (KeyError, TypeError):
        raise InputError(f"{path}:{line_no}: not a batch journal event: {json.dumps(event)[:120]}") from None


# -- the cache that prefetches through batch jobs -------------------------------------------
@dataclass
class _Tally:
    """Batch answers that landed in the cache in this run, per method (for the stage costs)."""

    jobs: set[str] = field(default_factory=set)
    answered: int = 0
    failed: Counter = field(default_factory=Counter)
    missing: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    probes: int = 0  # online requests sent to learn what the server supports
    probe_prompt_tokens: int = 0
    probe_completion_tokens: int = 0


class BatchCachedLLM(CachedLLM):
    """A :class:`~gecko_distill.llm.CachedLLM` that fills itself through the provider's batch API.

    It answers like a ``CachedLLM``. :meth:`prefetch` sends the requests that miss the cache as
    batch jobs and writes the answers into the cache. ``plans`` names the requests to prefetch
    before the first call of a method (``{"generate": lambda: requests}``), so that a stage
    which asks in chunks finds everything in the cache.

    Args:
        llm: A backend with a batch API (:class:`BatchBackend`).
        path: The SQLite cache file.
        journal: The batch journal (default: next to the cache, ``<role>_batch_jobs.jsonl``
            for ``<role>_cache.sqlite``).
        options: Polling, sizes and resubmission (:class:`BatchOptions`).
        plans: Per method, a function that lists the requests to prefetch before that method's
            first call.
        sleep: The wait between polls (default: ``time.sleep``).

    Raises:
        InputError: ``llm`` has no batch API.

    Example:
        >>> from gecko_distill.testing import FakeLLM
        >>> BatchCachedLLM(FakeLLM(), "cache.sqlite")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: batch=True (--llm-batch) needs a backend with a provider batch API ...
    """

    def __init__(
        self,
        llm: LLM,
        path: str | Path,
        *,
        journal: str | Path | None = None,
        options: BatchOptions | None = None,
        plans: Mapping[str, Callable[[], Sequence[Request]]] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        if not batch_capable(llm):
            raise InputError(
                f"batch=True (--llm-batch) needs a backend with a provider batch API (gemini:<model>, openai:<model>, "
                f"vllm:<model>...), not {getattr(llm, 'name', type(llm).__name__)}"
            )
        super().__init__(llm, path)
        if journal is None:
            journal = self.path.with_name(self.path.stem.removesuffix("_cache") + "_batch_jobs.jsonl")
        self.journal = BatchJournal(journal)
        self.options = options or BatchOptions()
        self._plans = dict(plans or {})
        self._sleep = sleep or (lambda seconds: _sleep(seconds))
        self._tally: dict[str, _Tally] = {"generate": _Tally(), "score": _Tally()}
        self._batch_notes: list[str] = []
        self._submitted_here: set[str] = set()  # labels of the jobs this object submitted
        self.reports: list[BatchReport] = []

    # -- the LLM Protocol, with the planned prefetch first ------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self._run_plan("generate")
        return super().generate(requests)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        self._run_plan("score")
        return super().score(requests)

    @property
    def notes(self) -> list[str]:
        return [*super().notes, *self._batch_notes]

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "batch": self.options.model_dump(), "batch_journal": str(self.journal.path)}

    def batch_stats(self, method: str, prices: Mapping | None = None) -> dict[str, Any]:
        """The batch answers of ``method`` that landed in the cache in this run: jobs, answers,
        failures, tokens, and their cost at batch prices (``None`` when the model has no price).
        The cost includes, at the standard price, the few online requests sent to learn what
        the server supports (``llm_batch_probes``), which the stage then reads from the cache.

        Example:
            >>> from gecko_distill.llm.cost import estimate_cost
            >>> estimate_cost("openai:gpt-4o-mini", 10**6, 0, batch=True)  # what batch_stats uses
            0.075
        """
        tally = self._tally[method]
        if not tally.jobs and not tally.probes:
            return {}
        name = self.llm.name
        cost = estimate_cost(name, tally.prompt_tokens, tally.completion_tokens, prices, batch=True)
        probe_cost = estimate_cost(name, tally.probe_prompt_tokens, tally.probe_completion_tokens, prices)
        return {
            "llm_batch_jobs": len(tally.jobs),
            "llm_batch_answers": tally.answered,
            "llm_batch_failed": dict(tally.failed),
            "llm_batch_missing": tally.missing,
            "llm_batch_prompt_tokens": tally.prompt_tokens,
            "llm_batch_completion_tokens": tally.completion_tokens,
            "llm_batch_probes": tally.probes,
            "llm_batch_cost_usd": None if cost is None or probe_cost is None else round(cost + probe_cost, 6),
        }

    # -- prefetching -------------------------------------------------------------------------
    def _run_plan(self, method: str) -> None:
        plan = self._plans.pop(method, None)
        if plan is not None:
            self.prefetch(method, plan())

    def prefetch(self, method: Method, requests: Sequence[Request], *, desc: str | None = None) -> BatchReport:
        """Answer ``requests`` through batch jobs, into the cache.

        Args:
            method: ``"generate"`` or ``"score"``.
            requests: The requests (duplicates are sent once).
            desc: The progress bar's label (default ``"batch <method>"``).

        Returns:
            What was cached, sent, answered, failed and left to the online path.

        Raises:
            BatchPendingError: Jobs still ran when ``max_wait_s`` ran out (rerun to resume them).
            UnsupportedCapabilityError: The online probe found that the backend cannot answer
                such requests at all.
        """
        backend: Any = self.llm
        name = backend.name
        wanted: dict[str, Request] = {}
        for request in requests:
            wanted.setdefault(request_key(name, method, request), request)
        report = BatchReport(method=method, requests=len(wanted))
        misses = self._misses(wanted)
        report.cached = len(wanted) - len(misses)
        routes = self._routes(method, misses, wanted)
        report.unsupported = sum(1 for key in misses if not routes.get(key))
        started = time.monotonic()
        limits = self._limits(backend)
        with progress(total=len(misses), desc=desc or f"batch {method}", unit="request") as bar:
            resumed_seen: set[str] = set()
            wait = self.options.poll_interval_s
            while True:
                jobs = self._live_jobs(method)
                attempts = self._attempts(method)
                in_flight = {key for job in jobs if job.state is None for key in job.keys}
                misses = self._misses({k: wanted[k] for k in misses})
                todo = [k for k in misses if routes.get(k) and k not in in_flight and attempts[k] <= self.options.resubmit]
                if todo and len(todo) >= self.options.min_requests:
                    self._submit(method, todo, wanted, routes, attempts, limits, report)
                    continue
                pending = [job for job in jobs if job.state is None]
                if not pending:
                    break
                for job in pending:
                    if job.name not in report.jobs:
                        report.jobs.append(job.name)
                        if job.label not in self._submitted_here and job.label not in resumed_seen:
                            resumed_seen.add(job.label)
                            report.jobs_resumed += 1
                finished = self._poll(pending, method, wanted, report, bar)
                if finished:
                    wait = self.options.poll_interval_s
                    continue
                if self.options.max_wait_s is not None and time.monotonic() - started > self.options.max_wait_s:
                    raise BatchPendingError(
                        f"{len(pending)} batch job(s) still running after {self.options.max_wait_s:g}s "
                        f"({', '.join(j.name or j.label for j in pending[:3])}); they are recorded in {self.journal.path}: "
                        "rerun the same command later to collect their answers (nothing is submitted twice)"
                    )
                self._sleep(wait * (1 - 0.1 * random.random()))
                wait = min(self.options.poll_max_interval_s, max(wait, 0.001) * self.options.poll_multiplier)
        report.left_online = sum(1 for key in self._misses({k: wanted[k] for k in misses}) if routes.get(key))
        self.reports.append(report)
        level = logging.WARNING if report.failed or report.missing or report.left_online else logging.INFO
        logger.log(level, "%s: %s", name, report.summary())
        if report.failed or report.missing or report.left_online:
            self._batch_notes.append(f"{name}: {report.summary()}")
        return report

    def _misses(self, wanted: Mapping[str, Request]) -> list[str]:
        found = self._lookup(list(wanted))
        return [key for key in wanted if key not in found]

    def _routes(self, method: str, misses: list[str], wanted: Mapping[str, Request]) -> dict[str, str]:
        """Each miss's batch route ("" when it cannot go in a batch); an unknown capability is
        found out by asking one request online first (its answer is cached like any other)."""
        backend: Any = self.llm
        routes: dict[str, str] = {}
        probes = 0
        for key in misses:
            route = backend.batch_route(method, wanted[key])
            if route is None and probes < _MAX_PROBES:
                probes += 1
                logger.info("%s: one %s request is sent online first, to learn what the server supports", backend.name, method)
                probe = getattr(self, "_online_" + method)([wanted[key]])[0]
                if not probe.cached:
                    tally = self._tally[method]
                    tally.probes += 1
                    tally.probe_prompt_tokens += probe.prompt_tokens
                    tally.probe_completion_tokens += getattr(probe, "completion_tokens", 0)
                route = backend.batch_route(method, wanted[key])
            routes[key] = route or ""
        return routes

    def _online_generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return CachedLLM.generate(self, requests)

    def _online_score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        return CachedLLM.score(self, requests)

    def _limits(self, backend: Any) -> tuple[int, int]:
        max_requests, max_bytes = backend.batch_limits()
        return self.options.max_requests_per_job or max_requests, self.options.max_job_bytes or max_bytes

    def _live_jobs(self, method: str) -> list[_Job]:
        """This method's jobs; a submission cut off before its name was recorded is looked up
        at the provider by its label (and adopted), or marked abandoned."""
        jobs = [job for job in self.journal.jobs().values() if job.method == method and not job.abandoned]
        for job in jobs:
            if job.name is None:
                name = self._call(lambda job=job: self.llm.batch_find(job.label))  # type: ignore[attr-defined]
                if name:
                    logger.info(
                        "%s: adopting batch job %s (its submission was interrupted before it was recorded)", self.llm.name, name
                    )
                    self.journal.append({"event": "submitted", "label": job.label, "job": name})
                    job.name = name
                else:
                    self.journal.append({"event": "abandoned", "label": job.label})
                    job.abandoned = True
        return [job for job in jobs if not job.abandoned]

    def _attempts(self, method: str) -> Counter:
        """Jobs each key was sent in; a key refused for good counts as out of attempts."""
        attempts: Counter = Counter()
        for job in self.journal.jobs().values():
            if job.method == method and not job.abandoned:
                attempts.update(job.keys)
                attempts.update(dict.fromkeys(job.permanent, self.options.resubmit + 1))
        return attempts

    def _submit(
        self,
        method: str,
        todo: list[str],
        wanted: Mapping[str, Request],
        routes: Mapping[str, str],
        attempts: Counter,
        limits: tuple[int, int],
        report: BatchReport,
    ) -> None:
        max_requests, max_bytes = limits
        by_route: dict[str, list[str]] = {}
        for key in todo:
            by_route.setdefault(routes[key], []).append(key)
        for route, keys in by_route.items():
            for chunk in _chunks(keys, wanted, max_requests, max_bytes):
                again = sum(1 for k in chunk if attempts[k])
                label = (
                    "gecko-distill-"
                    + hashlib.sha256(json.dumps([method, route, chunk, len(self.journal.jobs())]).encode()).hexdigest()[:24]
                )
                self.journal.append({"event": "submitting", "label": label, "method": method, "route": route, "keys": chunk})
                name = self._call(
                    lambda chunk=chunk, label=label: self.llm.batch_submit(  # type: ignore[attr-defined]
                        method, route, [(k, wanted[k]) for k in chunk], label
                    )
                )
                self.journal.append({"event": "submitted", "label": label, "job": name})
                self._submitted_here.add(label)
                report.jobs_submitted += 1
                report.submitted += len(chunk)
                report.resubmitted += again
                report.jobs.append(name)
                self._tally[method].jobs.add(name)
                logger.info(
                    "%s: submitted batch job %s (%d %s requests%s)",
                    self.llm.name,
                    name,
                    len(chunk),
                    method,
                    f", {again} resubmitted" if again else "",
                )

    def _poll(self, pending: list[_Job], method: str, wanted: Mapping[str, Request], report: BatchReport, bar: Any) -> bool:
        """Poll each pending job once; collect the finished ones. Returns whether any finished."""
        finished = False
        done_requests = 0
        for job in pending:
            try:
                status = self._call(lambda job=job: self.llm.batch_status(job.name))  # type: ignore[attr-defined]
            except _ProviderError as exc:
                if exc.reason != "http_404":
                    raise
                status = BatchStatus(state="failed", message="the provider no longer has this job")
            if not status.done:
                done_requests += status.completed or 0
                continue
            finished = True
            self._collect(job, status, method, wanted, report)
        bar.set_postfix_str(f"{len(pending)} job(s) running, {done_requests} requests done in them", refresh=False)
        bar.n = min(bar.total, report.answered + sum(report.failed.values()) + report.missing)
        bar.refresh()
        return finished

    def _collect(self, job: _Job, status: BatchStatus, method: str, wanted: Mapping[str, Request], report: BatchReport) -> None:
        """Write a finished job's answers into the cache; count what failed or is missing."""
        requests = {key: wanted.get(key) for key in job.keys}
        known = {key: request for key, request in requests.items() if request is not None}
        try:
            results = self._call(lambda: self.llm.batch_results(job.name, method, known)) if known else {}  # type: ignore[attr-defined]
        except _ProviderError as exc:
            if exc.reason != "http_404":
                raise
            results = {}  # the provider no longer has the job: its requests count as missing
        result_type = _RESULT_TYPES[method]
        good, failed, permanent = {}, Counter(), []
        for key, result in results.items():
            if key not in known or not isinstance(result, result_type):
                continue
            if result.error is None:
                good[key] = result
            else:
                reason = error_reason(result.error) or "error"
                failed[reason] += 1
                if reason in PERMANENT_REASONS:
                    permanent.append(key)
                logger.debug("%s: batch item failed: %s", self.llm.name, result.error)
        self._store(good)
        missing = len(known) - len(good) - sum(failed.values())
        tally = self._tally[method]
        tally.jobs.add(job.name or job.label)
        tally.answered += len(good)
        tally.failed.update(failed)
        tally.missing += missing
        tally.prompt_tokens += sum(r.prompt_tokens for r in good.values())
        tally.completion_tokens += sum(getattr(r, "completion_tokens", 0) for r in good.values())
        report.answered += len(good)
        report.prompt_tokens += sum(r.prompt_tokens for r in good.values())
        report.completion_tokens += sum(getattr(r, "completion_tokens", 0) for r in good.values())
        for reason, count in failed.items():
            report.failed[reason] = report.failed.get(reason, 0) + count
        report.missing += missing
        self.journal.append(
            {
                "event": "finished",
                "label": job.label,
                "job": job.name,
                "state": status.state,
                "answered": len(good),
                "failed": dict(failed),
                "missing": missing,
                "permanent": permanent,
            }
        )
        level = logging.INFO if status.state == "succeeded" and not failed and not missing else logging.WARNING
        logger.log(
            level,
            "%s: batch job %s %s: %d answered, %d failed, %d missing%s",
            self.llm.name,
            job.name,
            status.state,
            len(good),
            sum(failed.values()),
            missing,
            f" ({status.message})" if status.message else "",
        )

    def _call(self, call: Callable[[], Any]) -> Any:
        """A provider call, retried on retryable failures with the backend's backoff settings."""
        from ._http import RequestFailure

        opts = getattr(self.llm, "options", None)
        attempts = getattr(opts, "max_attempts", 3)
        delay = getattr(opts, "backoff_initial_s", 1.0)
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except RequestFailure as exc:
                if not exc.retryable or attempt == attempts:
                    raise _ProviderError(
                        exc.reason, f"{self.llm.name}: batch API call failed: {exc.reason}: {exc.detail}"
                    ) from None
                wait = max(delay, exc.retry_after or 0.0)
                logger.info("%s: batch API call failed (%s); retry %d in %.2fs", self.llm.name, exc.reason, attempt, wait)
                self._sleep(wait)
                delay = min(getattr(opts, "backoff_max_s", 60.0), delay * getattr(opts, "backoff_multiplier", 2.0))
        raise AssertionError("unreachable")  # pragma: no cover


def _chunks(keys: list[str], wanted: Mapping[str, Request], max_requests: int, max_bytes: int) -> Iterable[list[str]]:
    """Split ``keys`` into jobs of at most ``max_requests`` requests and about ``max_bytes``."""
    chunk: list[str] = []
    size = 0
    for key in keys:
        weight = len(wanted[key].model_dump_json()) + 512  # the request and its provider envelope
        if chunk and (len(chunk) >= max_requests or size + weight > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += weight
    if chunk:
        yield chunk
