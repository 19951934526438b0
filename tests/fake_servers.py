"""Fake LLM servers for tests: the parts of the Gemini REST API and of the OpenAI-compatible API
that our backends use, on 127.0.0.1 with an ephemeral port.

Each server runs in daemon threads, serves at most ``max_handlers`` connections at once, stops
itself after ``max_lifetime_s`` and bounds every hang by ``hang_s``. Answers are deterministic
functions of the prompt (see :func:`token_logprobs` and :func:`choice_distribution`), so tests
can compute the exact expected records.

Faults are injected by a marker in the prompt: ``[[fault:503,429@0.3]]`` makes the first attempt
at that prompt answer 503, the second 429 with ``Retry-After: 0.3``, and later attempts succeed;
a trailing ``*`` repeats the last fault forever (``[[fault:500*]]``). Kinds: ``429[@s]``, ``500``,
``503``, ``400``, ``hang`` (no answer for ``hang_s``), ``trunc`` (body shorter than its
Content-Length), ``html`` (200 with a non-JSON body), ``blocked`` (safety-blocked answer),
``missing`` (200 JSON without the required fields), ``leak`` (a 400 whose message quotes the
credentials it was sent).

Every request is logged (:attr:`FakeServer.log`) with its time, path, prompt and outcome.

Both servers also implement their provider's **batch API** (Gemini ``batchGenerateContent`` and
``batches/*``; OpenAI ``/v1/files`` and ``/v1/batches``). A job is answered with the same
deterministic answers as the online endpoints. :attr:`FakeServer.batch_outcomes` sets how each
submitted job ends, in submission order (later jobs succeed): ``ok``, ``fail`` (the job fails,
no answers), ``expire`` (Gemini: no answers; OpenAI: the first half answered, the rest
``batch_expired`` in the error file), ``partial`` (every second item fails), ``missing``
(every second item is absent from the output). A job finishes on its
:attr:`FakeServer.batch_polls_to_finish`-th status read. Batch calls are logged in
:attr:`FakeServer.batch_log`, not in :attr:`FakeServer.log`; :attr:`FakeServer.batch_submissions`
counts the jobs created.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = [
    "FakeGeminiServer",
    "FakeOpenAIServer",
    "LoggedRequest",
    "token_logprobs",
    "choice_distribution",
    "reply_text",
    "tokens",
]

_FAULT = re.compile(r"\[\[fault:([^\]]+)\]\]")
_TOKEN = re.compile(r"\s*\S+|\s+")
_WORD = re.compile(r"\w+")


# -- the deterministic "model" -------------------------------------------------------------
def tokens(text: str) -> list[tuple[int, str]]:
    """The fake tokenizer: ``(offset, token)`` pairs, each token = leading spaces + a word run."""
    return [(m.start(), m.group()) for m in _TOKEN.finditer(text)]


def token_logprobs(text: str) -> list[float]:
    """Log-probability of each token given the text before it: -0.5 if its word was seen
    before, -3.0 otherwise (so a query that overlaps its passage is likely)."""
    out = []
    for offset, token in tokens(text):
        seen = {w.lower() for w in _WORD.findall(text[:offset])}
        words = _WORD.findall(token.lower())
        out.append(-0.5 if words and all(w in seen for w in words) else -3.0)
    return out


def choice_distribution(prompt: str) -> dict[str, float]:
    """Next-token log-probabilities after ``prompt``: " Yes" grows with the share of the words
    of the line after the last "Query:" that occur before it; a little mass goes elsewhere."""
    head, _, tail = prompt.rpartition("Query:")
    query_words = _WORD.findall(tail.split("\n", 1)[0].lower())
    seen = {w.lower() for w in _WORD.findall(head)}
    overlap = sum(w in seen for w in query_words) / max(len(query_words), 1)
    p_yes = 1 / (1 + math.exp(-(8 * overlap - 4)))
    return {
        " Yes": math.log(0.9 * p_yes),
        " No": math.log(0.9 * (1 - p_yes)),
        " The": math.log(0.06),
        "\n": math.log(0.04),
    }


def reply_text(prompt: str) -> str:
    """The generation for ``prompt``: a task and a query from the last passage's first words
    (the format the generate stage parses), like :class:`gecko_distill.testing.FakeLLM`."""
    passage = prompt.rsplit("Passage:", 1)[-1].split("\n", 1)[0]
    words = _WORD.findall(_FAULT.sub("", passage).lower())[:4]
    return " Given a query, retrieve passages that answer it\nQuery: " + " ".join(words)


# -- the server ----------------------------------------------------------------------------
@dataclass
class LoggedRequest:
    """One request as the server saw it."""

    time: float
    path: str
    prompt: str
    outcome: str  # "ok" or the fault kind
    body: dict[str, Any] = field(repr=False, default_factory=dict)
    headers: dict[str, str] = field(repr=False, default_factory=dict)


@dataclass
class FakeBatchJob:
    """A batch job as a fake server keeps it."""

    name: str
    label: str
    requests: list[tuple[str, str, dict]]  # (key, endpoint path, request body)
    outcome: str
    polls: int = 0
    results: list[tuple[str, str, int, dict]] | None = None  # (key, kind, status, payload) once done
    extra: dict[str, Any] = field(default_factory=dict)  # provider details (model, endpoint, file ids)

    @property
    def done(self) -> bool:
        return self.results is not None


class _Stop(Exception):
    pass


class FakeServer:
    """Base class: an HTTP server on 127.0.0.1 with fault injection and a request log.

    Args:
        api_key: Expected key; requests without it are refused (401/400).
        latency_s: Delay before every answer (for throughput benchmarks).
        hang_s: How long a ``hang`` fault (or a frozen server) keeps a request waiting.
        max_lifetime_s: The server stops itself after this long.
        max_handlers: Connections served at once; more wait.
        retry_after_header: Send ``Retry-After`` with an injected 429 (Gemini's error body
            also carries a ``RetryInfo`` detail either way).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_s: float = 0.0,
        hang_s: float = 5.0,
        max_lifetime_s: float = 300.0,
        max_handlers: int = 128,
        retry_after_header: bool = True,
    ):
        self.api_key = api_key
        self.retry_after_header = retry_after_header
        self.inflight = 0
        self.max_inflight = 0
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.max_lifetime_s = max_lifetime_s
        self.log: list[LoggedRequest] = []
        self.answered: Counter[str] = Counter()  # prompt -> successful answers sent in full
        self.freeze_after: int | None = None  # after this many requests are let through, every request hangs
        #: Rewrites each token listed in the top log-probabilities (e.g. ``str.lower``, as models
        #: that answer "yes" list it); ``None`` lists them as :func:`choice_distribution` has them.
        self.top_token: Callable[[str], str] | None = None
        self.batch_outcomes: list[str] = []  # how the 1st, 2nd... submitted job ends (later ones: "ok")
        self.batch_polls_to_finish = 1  # status reads of a job before it is done
        self.batch_jobs: dict[str, FakeBatchJob] = {}
        self.batch_log: list[tuple[str, str]] = []  # (verb, path) of every batch API call
        self.batch_answered: Counter[str] = Counter()  # prompt -> answers sent in batch outputs
        self.files: dict[str, bytes] = {}
        self._admitted = 0
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._slots = threading.BoundedSemaphore(max_handlers)
        self._httpd: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries for tests ---------------------------------------------------------------
    def requests_for(self, needle: str) -> list[LoggedRequest]:
        """Logged requests whose prompt contains ``needle``."""
        with self._lock:
            return [r for r in self.log if needle in r.prompt]

    def outcomes(self) -> Counter[str]:
        with self._lock:
            return Counter(r.outcome for r in self.log)

    # -- request handling ----------------------------------------------------------------
    def _next_fault(self, prompt: str) -> str | None:
        match = _FAULT.search(prompt)
        with self._lock:
            attempt = self._attempts[prompt]
            self._attempts[prompt] += 1
            frozen = self.freeze_after is not None and self._admitted >= self.freeze_after
            self._admitted += not frozen
        if frozen:
            return "hang"
        if not match:
            return None
        plan = match.group(1).split(",")
        if attempt < len(plan):
            return plan[attempt].rstrip("*")
        return plan[-1].rstrip("*") if plan[-1].endswith("*") else None

    def _record(self, path: str, prompt: str, outcome: str, body: dict, headers: dict) -> None:
        with self._lock:
            self.log.append(LoggedRequest(time.monotonic(), path, prompt, outcome, body, headers))

    def _sleep(self, seconds: float) -> None:
        if self._stopped.wait(seconds):
            raise _Stop

    def _top(self, prompt: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely next tokens after ``prompt``, renamed by :attr:`top_token`."""
        top = sorted(choice_distribution(prompt).items(), key=lambda kv: -kv[1])[:k]
        return [(self.top_token(t), lp) for t, lp in top] if self.top_token else top

    # -- batch jobs --------------------------------------------------------------------------
    @property
    def batch_submissions(self) -> int:
        """Batch jobs created so far."""
        with self._lock:
            return len(self.batch_jobs)

    def _new_batch_job(self, prefix: str, label: str, requests: list[tuple[str, str, dict]]) -> FakeBatchJob:
        with self._lock:
            index = len(self.batch_jobs)
            outcome = self.batch_outcomes[index] if index < len(self.batch_outcomes) else "ok"
            job = FakeBatchJob(name=f"{prefix}{index + 1}", label=label, requests=requests, outcome=outcome)
            self.batch_jobs[job.name] = job
        return job

    def _read_batch_job(self, name: str) -> FakeBatchJob | None:
        """A status read: the job advances; on its last read it is done and its answers are made."""
        with self._lock:
            job = self.batch_jobs.get(name)
            if job is None:
                return None
            job.polls += 1
            if job.results is None and job.polls >= self.batch_polls_to_finish:
                job.results = []
                for index, (key, path, body) in enumerate(job.requests):
                    job.results.append((key, *self._batch_item(job.outcome, index, len(job.requests), path, body)))
        return job

    def _batch_item(self, outcome: str, index: int, n: int, path: str, body: dict) -> tuple[str, int, dict]:
        """(kind, status, payload) of one item: ``ok``, ``error`` or ``missing``. Called under the lock."""
        if outcome == "fail" or (outcome == "expire" and (self.expired_keep_none or index >= n // 2)):
            return "expired" if outcome == "expire" else "missing", 0, {}
        if outcome == "partial" and index % 2:
            return "error", 500, self.error_body(500, "injected item failure")
        if outcome == "missing" and index % 2:
            return "missing", 0, {}
        status, payload = self.answer(path, body)
        if status == 200:
            self.batch_answered[self.prompt_of(path, body)] += 1
        return ("ok" if status == 200 else "error"), status, payload

    expired_keep_none = True  # whether an expired job keeps no answers (Gemini) or its first half (OpenAI)

    def is_batch_post(self, path: str) -> bool:
        """Whether a POST to ``path`` is a batch API call."""
        return False

    def batch_post(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict]:
        """Answer a batch API POST."""
        raise NotImplementedError

    def batch_get(self, path: str) -> tuple[int, dict | bytes] | None:
        """Answer a batch API GET, or ``None`` if ``path`` is not one."""
        return None

    # Subclasses implement these.
    def prompt_of(self, path: str, body: dict) -> str:
        raise NotImplementedError

    def authorised(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        raise NotImplementedError

    def fault_body(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        raise NotImplementedError

    def error_body(self, status: int, message: str, retry_after: float | None = None) -> dict:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops bursts of connections
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/_stats":  # for a server run in another process (benchmarks)
            with self.fake._lock:
                stats = {"requests": len(self.fake.log), "max_inflight": self.fake.max_inflight}
            self._send(200, stats)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not self.fake.authorised(headers):
            self._send(401, self.fake.error_body(401, "API key not valid"))
            return
        with self.fake._lock:
            self.fake.batch_log.append(("GET", self.path))
        answer = self.fake.batch_get(self.path)
        if answer is None:
            self._send(404, self.fake.error_body(404, f"no route {self.path}"))
        elif isinstance(answer[1], bytes):
            self._send_raw(answer[0], answer[1], "application/octet-stream")
        else:
            self._send(*answer)  # type: ignore[arg-type]

    def do_POST(self) -> None:
        fake = self.fake
        if fake.is_batch_post(self.path):  # a batch API route: not an LLM call
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not fake.authorised(headers):
                self._send(401, fake.error_body(401, "API key not valid"))
                return
            with fake._lock:
                fake.batch_log.append(("POST", self.path))
            self._send(*fake.batch_post(self.path, headers, raw))  # type: ignore[misc]
            return
        with fake._slots:
            with fake._lock:
                fake.inflight += 1
                fake.max_inflight = max(fake.max_inflight, fake.inflight)
            try:
                self._serve(fake)
            except (_Stop, BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                with fake._lock:
                    fake.inflight -= 1

    def _serve(self, fake: FakeServer) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(400, fake.error_body(400, "request body is not JSON"))
            return
        prompt = fake.prompt_of(self.path, body)
        if not fake.authorised(headers):
            fake._record(self.path, prompt, "unauthorised", body, headers)
            # Like some real APIs, the message quotes the key it got: clients must redact it.
            sent = headers.get("x-goog-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            self._send(401, fake.error_body(401, f"API key not valid: {sent}"))
            return
        fault = fake._next_fault(prompt)
        fake._record(self.path, prompt, fault or "ok", body, headers)
        if fake.latency_s:
            fake._sleep(fake.latency_s)
        if fault is None:
            status, payload = fake.answer(self.path, body)
            self._send(status, payload)
            if status == 200:
                with fake._lock:
                    fake.answered[prompt] += 1
            return
        self._fault(fake, fault, body)

    def _fault(self, fake: FakeServer, fault: str, body: dict) -> None:
        kind, _, arg = fault.partition("@")
        if kind == "hang":
            fake._sleep(fake.hang_s)
            self.close_connection = True
        elif kind in {"429", "500", "503", "400"}:
            retry_after = float(arg) if arg else None
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None and fake.retry_after_header else {}
            self._send(int(kind), fake.error_body(int(kind), f"injected {kind}", retry_after), extra)
        elif kind == "trunc":
            data = json.dumps(fake.answer(self.path, body)[1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif kind == "leak":  # an error that quotes the credentials it was sent
            sent = self.headers.get("x-goog-api-key") or self.headers.get("Authorization", "")
            self._send(400, fake.error_body(400, f"malformed request (credentials: {sent})"))
        elif kind == "html":
            self._send_raw(200, b"<html><body>502 Bad Gateway (proxy)</body></html>", "text/html")
        else:
            status, payload = fake.fault_body(kind, self.path, body)
            self._send(status, payload)

    def _send(self, status: int, payload: dict, extra_headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", extra_headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


# -- Gemini --------------------------------------------------------------------------------
class FakeGeminiServer(FakeServer):
    """``POST /{version}/models/{model}:generateContent`` as google-genai calls it.

    Models named ``no-logprobs*`` refuse ``responseLogprobs`` with 400 INVALID_ARGUMENT (as
    gemini-2.5 models on the Gemini API do); models named ``silent-no-logprobs*`` ignore it.
    With ``responseMimeType: application/json`` the answer is a JSON object built from the
    response schema (graded relevance labels or a task/query record).
    """

    def prompt_of(self, path: str, body: dict) -> str:
        parts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
        return "".join(parts)

    def authorised(self, headers: dict[str, str]) -> bool:
        return self.api_key is None or headers.get("x-goog-api-key") == self.api_key

    def error_body(self, status: int, message: str, retry_after: float | None = None) -> dict:
        names = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
            503: "UNAVAILABLE",
        }
        error: dict[str, Any] = {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}
        if retry_after is not None:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}]
        return {"error": error}

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        model = path.split("/models/", 1)[-1].split(":", 1)[0]
        prompt = self.prompt_of(path, body)
        config = body.get("generationConfig", {})
        want_logprobs = config.get("responseLogprobs")
        if want_logprobs and model.startswith("no-logprobs"):
            return 400, self.error_body(400, f"Logprobs is not enabled for models/{model}")
        if config.get("responseMimeType") == "application/json":
            text = json.dumps(_json_answer(prompt, config.get("responseSchema") or config.get("responseJsonSchema") or {}))
        elif want_logprobs:
            text = max(choice_distribution(prompt).items(), key=lambda kv: kv[1])[0].strip()
        else:
            text = reply_text(prompt)
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
        if want_logprobs and not model.startswith("silent-no-logprobs"):
            top = self._top(prompt, int(config.get("logprobs", 1)))
            entries = [{"token": t.strip() or t, "logProbability": lp} for t, lp in top]
            candidate["logprobsResult"] = {"topCandidates": [{"candidates": entries}], "chosenCandidates": entries[:1]}
        usage = {
            "promptTokenCount": len(tokens(prompt)),
            "candidatesTokenCount": len(tokens(text)),
            "totalTokenCount": len(tokens(prompt)) + len(tokens(text)),
        }
        return 200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    def fault_body(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        usage = {"promptTokenCount": 7, "totalTokenCount": 7}
        if kind == "blocked":
            return 200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
        if kind == "missing":
            return 200, {"candidates": [{"finishReason": "STOP", "index": 0}], "usageMetadata": usage}
        raise ValueError(f"unknown fault {kind!r}")

    # -- batch API -------------------------------------------------------------------------
    _STATES = {
        "ok": "BATCH_STATE_SUCCEEDED",
        "partial": "BATCH_STATE_SUCCEEDED",
        "missing": "BATCH_STATE_SUCCEEDED",
        "fail": "BATCH_STATE_FAILED",
        "expire": "BATCH_STATE_EXPIRED",
    }

    def is_batch_post(self, path: str) -> bool:
        return path.split("?", 1)[0].endswith(":batchGenerateContent")

    def batch_post(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict]:
        body = json.loads(raw or b"{}")
        version = path.split("/")[1]
        model = path.split("/models/", 1)[-1].split(":", 1)[0]
        batch = body.get("batch") or {}
        items = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests") or []
        if not items:
            return 400, self.error_body(400, "the batch has no inline requests")
        endpoint = f"/{version}/models/{model}:generateContent"
        requests = [(json.dumps(item.get("metadata") or {}), endpoint, item.get("request") or {}) for item in items]
        job = self._new_batch_job("batches/", str(batch.get("displayName") or ""), requests)
        job.extra["model"] = model
        return 200, self._operation(job)

    def batch_get(self, path: str) -> tuple[int, dict | bytes] | None:
        route = path.split("?", 1)[0]
        parts = route.strip("/").split("/")
        if len(parts) == 2 and parts[1] == "batches":
            with self._lock:
                jobs = list(self.batch_jobs.values())
            return 200, {"operations": [self._operation(job) for job in jobs]}
        if len(parts) == 3 and parts[1] == "batches":
            job = self._read_batch_job(f"batches/{parts[2]}")
            if job is None:
                return 404, self.error_body(404, f"no batch {parts[2]}")
            return 200, self._operation(job)
        return None

    def _operation(self, job: FakeBatchJob) -> dict:
        state = "BATCH_STATE_PENDING" if job.polls == 0 else "BATCH_STATE_RUNNING"
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{job.extra.get('model', '')}",
            "displayName": job.label,
            "state": state,
        }
        if job.results is not None:
            meta["state"] = self._STATES[job.outcome]
            if meta["state"] == "BATCH_STATE_SUCCEEDED":
                out = []
                for key, kind, status, payload in job.results:
                    if kind == "ok":
                        out.append({"response": payload, "metadata": json.loads(key)})
                    elif kind == "error":
                        out.append(
                            {"error": {"code": status, "message": payload["error"]["message"]}, "metadata": json.loads(key)}
                        )
                meta["output"] = {"inlinedResponses": {"inlinedResponses": out}}
        return {"name": job.name, "metadata": meta, "done": job.results is not None}


def _json_answer(prompt: str, schema: dict) -> dict:
    """Fill a response schema: graded relevance ({answer, confidence}) or any object of strings."""
    props = {k.lower(): v for k, v in (schema.get("properties") or {}).items()}
    if "answer" in props and "confidence" in props:
        dist = choice_distribution(prompt)
        labels = props["answer"].get("enum") or ["Yes", "No"]
        p_yes = math.exp(dist[" Yes"]) / (math.exp(dist[" Yes"]) + math.exp(dist[" No"]))
        answer = labels[0] if p_yes >= 0.5 else labels[-1]
        sure = max(p_yes, 1 - p_yes)
        return {"answer": answer, "confidence": "certain" if sure > 0.9 else "likely" if sure > 0.65 else "unsure"}
    task, _, query = reply_text(prompt).partition("\nQuery: ")
    values = {"task": task.strip(), "query": query.strip()}
    return {name: values.get(name, name) for name in (schema.get("properties") or {"text": {}})}


# -- OpenAI-compatible ---------------------------------------------------------------------
class FakeOpenAIServer(FakeServer):
    """``POST /v1/chat/completions`` and ``POST /v1/completions`` like vLLM or OpenAI.

    Args:
        echo: Whether ``/v1/completions`` honours ``echo`` with ``logprobs`` (vLLM does;
            llama.cpp and Ollama ignore it).
        completions: Whether ``/v1/completions`` exists (a chat-only server answers 404).
        **kwargs: See :class:`FakeServer`.
    """

    def __init__(self, *, echo: bool = True, completions: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.echo = echo
        self.completions = completions

    def prompt_of(self, path: str, body: dict) -> str:
        if "messages" in body:
            return "".join(str(m.get("content", "")) for m in body["messages"])
        return str(body.get("prompt", ""))

    def authorised(self, headers: dict[str, str]) -> bool:
        return self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}"

    def error_body(self, status: int, message: str, retry_after: float | None = None) -> dict:
        return {
            "error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error", "code": status}
        }

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        prompt = self.prompt_of(path, body)
        if path.endswith("/chat/completions"):
            return 200, self._chat(prompt, body)
        if path.endswith("/completions"):
            if not self.completions:
                return 404, self.error_body(404, "This is a chat model and not supported in the v1/completions endpoint")
            return 200, self._completion(prompt, body)
        return 404, self.error_body(404, f"no route {path}")

    def _generated(self, prompt: str, body: dict) -> tuple[str, str]:
        """(text, finish_reason) honouring max_tokens and stop."""
        if body.get("logprobs") or body.get("max_tokens") == 1:
            text = max(choice_distribution(prompt).items(), key=lambda kv: kv[1])[0]
        else:
            text = reply_text(prompt)
        for stop in body.get("stop") or []:
            text = text.split(stop, 1)[0]
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        toks = tokens(text)
        if limit is not None and len(toks) > limit:
            return "".join(t for _, t in toks[:limit]), "length"
        return text, "stop"

    def _chat(self, prompt: str, body: dict) -> dict:
        text, finish = self._generated(prompt, body)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text.strip() if body.get("logprobs") else text},
            "finish_reason": finish,
        }
        if body.get("logprobs"):
            top = self._top(prompt, int(body.get("top_logprobs") or 1))
            entries = [{"token": t.strip() or t, "logprob": lp, "bytes": None} for t, lp in top]
            choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
        return self._envelope("chat.completion", body, [choice], prompt, text)

    def _completion(self, prompt: str, body: dict) -> dict:
        text, finish = self._generated(prompt, body)
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        k = body.get("logprobs")
        if k is not None:
            dist = self._top(prompt, max(int(k), 1))
            gen = {
                "tokens": [text],
                "token_logprobs": [choice_distribution(prompt).get(text, -9.0)],
                "top_logprobs": [dict(dist)],
                "text_offset": [len(prompt)],
            }
            if body.get("echo") and self.echo:
                toks, lps = tokens(prompt), token_logprobs(prompt)
                lps[0] = None  # the first token has no logprob, as in vLLM and OpenAI
                choice["text"] = prompt + text
                choice["logprobs"] = {
                    "tokens": [t for _, t in toks] + gen["tokens"],
                    "token_logprobs": lps + gen["token_logprobs"],
                    "top_logprobs": [None] + [{t: lp} for (_, t), lp in zip(toks[1:], lps[1:])] + gen["top_logprobs"],
                    "text_offset": [o for o, _ in toks] + [len(prompt)],
                }
            else:
                choice["logprobs"] = gen  # what a server that ignores echo sends
        return self._envelope("text_completion", body, [choice], prompt, text)

    def _envelope(self, kind: str, body: dict, choices: list, prompt: str, text: str) -> dict:
        usage = {
            "prompt_tokens": len(tokens(prompt)),
            "completion_tokens": len(tokens(text)),
            "total_tokens": len(tokens(prompt)) + len(tokens(text)),
        }
        return {
            "id": "cmpl-fake",
            "object": kind,
            "created": 0,
            "model": body.get("model", ""),
            "choices": choices,
            "usage": usage,
        }

    def fault_body(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        if kind == "blocked":
            choice: dict[str, Any] = {"index": 0, "finish_reason": "content_filter", "logprobs": None}
            choice.update({"message": {"role": "assistant", "content": None}} if "messages" in body else {"text": ""})
            return 200, {
                "id": "x",
                "object": "x",
                "created": 0,
                "model": body.get("model", ""),
                "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
            }
        if kind == "missing":
            return 200, {"id": "x", "object": "x", "created": 0, "model": body.get("model", "")}
        raise ValueError(f"unknown fault {kind!r}")

    # -- batch API -------------------------------------------------------------------------
    expired_keep_none = False  # an expired OpenAI batch keeps the answers it had finished
    _STATUS = {"ok": "completed", "partial": "completed", "missing": "completed", "fail": "failed", "expire": "expired"}

    def is_batch_post(self, path: str) -> bool:
        return path.split("?", 1)[0] in ("/v1/files", "/v1/batches")

    def batch_post(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict]:
        if path.startswith("/v1/files"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + headers.get("content-type", "").encode() + b"\r\n\r\n" + raw
            )
            fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
            if "file" not in fields or fields.get("purpose") is None:
                return 400, self.error_body(400, "a multipart form with 'file' and 'purpose' is required")
            content = fields["file"].get_payload(decode=True)
            with self._lock:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = content
            return 200, {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": 0,
                "filename": fields["file"].get_filename(),
                "purpose": fields["purpose"].get_content().strip(),
            }
        body = json.loads(raw or b"{}")
        content = self.files.get(body.get("input_file_id", ""))
        if content is None:
            return 400, self.error_body(400, f"no file {body.get('input_file_id')!r}")
        endpoint = body.get("endpoint", "")
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        if any(line.get("url") != endpoint for line in lines):
            return 400, self.error_body(400, "every request of a batch must use the batch's endpoint")
        requests = [(line["custom_id"], line["url"], line["body"]) for line in lines]
        job = self._new_batch_job("batch_", str((body.get("metadata") or {}).get("gecko_distill_label", "")), requests)
        job.extra.update(endpoint=endpoint, input_file_id=body["input_file_id"], metadata=body.get("metadata") or {})
        return 200, self._batch_object(job)

    def batch_get(self, path: str) -> tuple[int, dict | bytes] | None:
        route = path.split("?", 1)[0]
        if route == "/v1/batches":
            with self._lock:
                jobs = list(self.batch_jobs.values())
            return 200, {"object": "list", "data": [self._batch_object(job) for job in reversed(jobs)], "has_more": False}
        if route.startswith("/v1/batches/"):
            job = self._read_batch_job(route.rsplit("/", 1)[-1])
            if job is None:
                return 404, self.error_body(404, "no such batch")
            return 200, self._batch_object(job)
        if route.startswith("/v1/files/") and route.endswith("/content"):
            content = self.files.get(route.split("/")[3])
            return (404, self.error_body(404, "no such file")) if content is None else (200, content)
        return None

    def _batch_object(self, job: FakeBatchJob) -> dict:
        n = len(job.requests)
        status = "validating" if job.polls == 0 else "in_progress"
        obj: dict[str, Any] = {
            "id": job.name,
            "object": "batch",
            "endpoint": job.extra.get("endpoint"),
            "errors": None,
            "input_file_id": job.extra.get("input_file_id"),
            "completion_window": "24h",
            "status": status,
            "output_file_id": None,
            "error_file_id": None,
            "metadata": job.extra.get("metadata") or {},
            "request_counts": {"total": n, "completed": 0, "failed": 0},
        }
        if job.results is None:
            return obj
        obj["status"] = self._STATUS[job.outcome]
        if job.outcome == "fail":
            obj["errors"] = {"object": "list", "data": [{"code": "injected", "message": "injected job failure"}]}
            return obj
        if "output_file_id" not in job.extra:
            output, errors = [], []
            for i, (key, kind, status_code, payload) in enumerate(job.results):
                if kind == "ok":
                    output.append(
                        {
                            "id": f"batch_req_{i}",
                            "custom_id": key,
                            "error": None,
                            "response": {"status_code": 200, "request_id": f"req_{i}", "body": payload},
                        }
                    )
                elif kind == "error":
                    errors.append(
                        {
                            "id": f"batch_req_{i}",
                            "custom_id": key,
                            "error": None,
                            "response": {"status_code": status_code, "request_id": f"req_{i}", "body": payload},
                        }
                    )
                elif kind == "expired":
                    errors.append(
                        {
                            "id": f"batch_req_{i}",
                            "custom_id": key,
                            "response": None,
                            "error": {"code": "batch_expired", "message": "not executed before the completion window expired"},
                        }
                    )
            with self._lock:
                for name, lines in (("output_file_id", output), ("error_file_id", errors)):
                    if lines:
                        file_id = f"file-{len(self.files) + 1}"
                        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
                        job.extra[name] = file_id
                job.extra.setdefault("output_file_id", None)
                job.extra.setdefault("error_file_id", None)
                job.extra["counts"] = {"total": n, "completed": len(output), "failed": len(errors)}
        obj.update(
            output_file_id=job.extra["output_file_id"],
            error_file_id=job.extra["error_file_id"],
            request_counts=job.extra["counts"],
        )
        return obj
