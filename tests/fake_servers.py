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
"""

from __future__ import annotations

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
        self._send(404, self.fake.error_body(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        fake = self.fake
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
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE"}
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
        usage = {"promptTokenCount": len(tokens(prompt)), "candidatesTokenCount": len(tokens(text)),
                 "totalTokenCount": len(tokens(prompt)) + len(tokens(text))}
        return 200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    def fault_body(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        usage = {"promptTokenCount": 7, "totalTokenCount": 7}
        if kind == "blocked":
            return 200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}
        if kind == "missing":
            return 200, {"candidates": [{"finishReason": "STOP", "index": 0}], "usageMetadata": usage}
        raise ValueError(f"unknown fault {kind!r}")


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
        return {"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                          "code": status}}

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
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text.strip() if body.get("logprobs") else text},
                                  "finish_reason": finish}
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
            gen = {"tokens": [text], "token_logprobs": [choice_distribution(prompt).get(text, -9.0)],
                   "top_logprobs": [dict(dist)], "text_offset": [len(prompt)]}
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
        usage = {"prompt_tokens": len(tokens(prompt)), "completion_tokens": len(tokens(text)),
                 "total_tokens": len(tokens(prompt)) + len(tokens(text))}
        return {"id": "cmpl-fake", "object": kind, "created": 0, "model": body.get("model", ""), "choices": choices,
                "usage": usage}

    def fault_body(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        if kind == "blocked":
            choice: dict[str, Any] = {"index": 0, "finish_reason": "content_filter", "logprobs": None}
            choice.update({"message": {"role": "assistant", "content": None}} if "messages" in body else {"text": ""})
            return 200, {"id": "x", "object": "x", "created": 0, "model": body.get("model", ""), "choices": [choice],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}}
        if kind == "missing":
            return 200, {"id": "x", "object": "x", "created": 0, "model": body.get("model", "")}
        raise ValueError(f"unknown fault {kind!r}")
