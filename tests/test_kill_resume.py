"""End to end over HTTP: build_fret against the fake OpenAI-compatible server.

* The kill test runs ``build_fret`` in a subprocess, freezes the server mid-relabel (every new
  request hangs), SIGKILLs the process, and runs it again. Nothing may be lost or duplicated,
  and no request the server answered may be asked again (the server counts answers per prompt;
  only the requests that hung at the kill are sent twice).
* The secrets test runs with a sentinel API key, including a server error that quotes the key
  back, and greps every file written (and the logs) for it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_servers import FakeOpenAIServer

from gecko_distill import FRetConfig, RetrieveConfig, build_fret
from gecko_distill.llm import get_llm

pytest.importorskip("httpx")

SENTINEL = "sk-SENTINEL-7f3a9c1e5b"
TOP_N = 4
N_PASSAGES = 10

SCRIPT = """
import logging, sys
from gecko_distill import FRetConfig, RelabelConfig, RetrieveConfig, build_fret
from gecko_distill.llm import get_llm

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
url, corpus, out = sys.argv[1:4]
llm = get_llm("vllm:fake-teacher", base_url=url, api_key_env="GD_TEST_LLM_KEY", concurrency=4, timeout_s=30,
              backoff_initial_s=0.01)
fret = build_fret(corpus, llm=llm, config=FRetConfig(retrieve=RetrieveConfig(top_n={top_n}), relabel=RelabelConfig(batch_size=2)),
                  output_dir=out)
print("EXAMPLES", len(fret))
"""


@pytest.fixture
def corpus(pydoc_passages, tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "".join(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n" for p in pydoc_passages[:N_PASSAGES])
    )
    return path


def _start(script: Path, url: str, corpus: Path, out: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "GD_TEST_LLM_KEY": SENTINEL, "TQDM_DISABLE": "1"}
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, str(script), url, str(corpus), str(out)], stdout=sink, stderr=sink, env=env)


def _wait_until(condition, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"kill point not reached in {timeout}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sigkill_mid_relabel_then_resume(corpus, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(top_n=TOP_N))
    out, log = tmp_path / "run", tmp_path / "run.log"
    generations = N_PASSAGES
    freeze_at = generations + 3 * TOP_N + 2  # a few queries into relabel, in the middle of one
    with FakeOpenAIServer(api_key=SENTINEL, hang_s=120) as server:
        server.freeze_after = freeze_at
        proc = _start(script, server.url + "/v1", corpus, out, log)
        _wait_until(lambda: any(r.outcome == "hang" for r in server.log), 180, proc, log)
        time.sleep(0.5)  # let the client store whatever it has already received
        in_flight = sum(r.outcome == "hang" for r in server.log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        answered_before = sum(server.answered.values())
        relabelled_before = len(_lines(out / "relabel" / "records.jsonl"))
        assert answered_before == freeze_at and 0 < in_flight <= 4
        assert 0 < relabelled_before < N_PASSAGES

        server.freeze_after = None
        rerun = _start(script, server.url + "/v1", corpus, out, log)
        assert rerun.wait(timeout=180) == 0, log.read_text()[-3000:]

        # Nothing lost, nothing duplicated.
        records = _lines(out / "relabel" / "records.jsonl")
        assert len(records) == N_PASSAGES and len({r["id"] for r in records}) == N_PASSAGES
        assert _lines(out / "relabel" / "skips.jsonl") == []
        assert len(_lines(out / "fret.jsonl")) == N_PASSAGES
        # Every prompt ever sent was answered, and answered exactly once.
        assert set(server.answered) == {r.prompt for r in server.log}
        assert max(server.answered.values()) == 1
        # The second run sent only the prompts the first never got answered (the hung ones included).
        requests_after_kill = len(server.log) - answered_before - in_flight
        assert requests_after_kill == len(server.answered) - answered_before
        assert {r.prompt for r in server.log if r.outcome == "hang"} <= set(server.answered)
    _assert_no_secret(tmp_path)


def test_sentinel_key_is_in_no_file_written(corpus, embedder, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GD_TEST_LLM_KEY", SENTINEL)
    # One passage draws an error that quotes the key back; it must be stored redacted.
    lines = corpus.read_text().splitlines()
    first = json.loads(lines[0])
    first["text"] = "[[fault:leak*]] " + first["text"]
    corpus.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with FakeOpenAIServer(api_key=SENTINEL) as server, caplog.at_level(logging.DEBUG):
        llm = get_llm("vllm:fake-teacher", base_url=server.url + "/v1", api_key_env="GD_TEST_LLM_KEY", timeout_s=5)
        fret = build_fret(
            corpus,
            llm=llm,
            embedder=embedder,
            config=FRetConfig(retrieve=RetrieveConfig(top_n=TOP_N)),
            output_dir=tmp_path / "run",
        )
        llm.close()
        assert all(r.headers.get("authorization") == f"Bearer {SENTINEL}" for r in server.log)  # it was used
    skips = _lines(tmp_path / "run" / "generate" / "skips.jsonl")
    assert len(skips) == 1 and "***" in skips[0]["detail"]
    # the faulty passage also fails the relabelling of any query that retrieves it as a candidate
    relabel_skips = (
        _lines(tmp_path / "run" / "relabel" / "skips.jsonl") if (tmp_path / "run" / "relabel" / "skips.jsonl").exists() else []
    )
    assert all(s["reason"] == "llm_error" and "***" in s["detail"] for s in relabel_skips)
    assert len(fret) == N_PASSAGES - 1 - len(relabel_skips)
    assert SENTINEL not in caplog.text and SENTINEL not in json.dumps(fret.stats)
    _assert_no_secret(tmp_path)


def _assert_no_secret(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "llm_cache.sqlite" for p in files)
    leaks = [str(p) for p in files if SENTINEL.encode() in p.read_bytes()]
    assert leaks == []
