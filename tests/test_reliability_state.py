"""The state of an output folder across runs (issue 13): failed LLM calls are retried, a damaged
finished stage is repaired, the embedder fingerprint follows the model itself, two runs never
share a folder, bad arguments and filesystem problems are one clear error before any work."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gecko_distill import (
    FRetConfig,
    GeckoDistillError,
    GeneratedQuery,
    InputError,
    RetrieveConfig,
    StaleOutputError,
    build_fret,
)
from gecko_distill._io import StageCheckpoint
from gecko_distill.cli import main
from gecko_distill.llm.base import Generation, Score
from gecko_distill.testing import FakeLLM

CONFIG = FRetConfig(retrieve=RetrieveConfig(top_n=4))
STAGES = ("generate", "retrieve", "relabel")


@pytest.fixture
def passages(pydoc_passages):
    return pydoc_passages[:12]


@pytest.fixture
def corpus(passages, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n" for p in passages))
    return path


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


# -- 1. failed LLM calls are retried -------------------------------------------------------------
def opening(text: str) -> str:
    """The first words of a passage, as they appear in a prompt."""
    return " ".join(text.split()[:12])


def mentions(prompt: str, opening_words: str) -> bool:
    return opening_words in " ".join(prompt.rsplit("Passage:", 1)[-1].split())


class Flaky(FakeLLM):
    """A teacher whose calls fail for some passages (as a server answering 503 would)."""

    def __init__(self, failing_generation: list[str], failing_candidate: str, error: str = "http_503: unavailable"):
        super().__init__()
        self.failing_generation = [opening(t) for t in failing_generation]
        self.failing_candidate, self.error = opening(failing_candidate), error
        self.failed: set = set()

    def generate(self, requests):
        results = super().generate(requests)
        for i, request in enumerate(requests):
            if any(mentions(request.prompt, words) for words in self.failing_generation):
                results[i] = Generation(error=self.error)
                self.failed.add(request)
        return results

    def score(self, requests):
        results = super().score(requests)
        for i, request in enumerate(requests):
            if mentions(request.context, self.failing_candidate):
                results[i] = Score(error=self.error)
                self.failed.add(request)
        return results


def test_failed_llm_items_are_retried_on_a_rerun_and_nothing_else_is_asked(corpus, passages, embedder, tmp_path):
    out = tmp_path / "run"
    flaky = Flaky([p.text for p in passages[:2]], passages[5].text)
    first = build_fret(corpus, llm=flaky, embedder=embedder, config=CONFIG, output_dir=out)
    assert first.stats["generate"]["skipped"] == {"llm_error": 2}
    assert first.stats["relabel"]["skipped"].get("llm_error", 0) >= 1 and len(first) < 10
    with sqlite3.connect(out / "llm_cache.sqlite") as db:  # no error answer is cached
        stored = [json.loads(v) for (v,) in db.execute("SELECT value FROM cache")]
    assert stored and all(v.get("error") is None for v in stored)

    again = FakeLLM()  # the server has recovered
    fret = build_fret(corpus, llm=again, embedder=embedder, config=CONFIG, output_dir=out)
    assert len(fret) == 12 and fret.stats["generate"]["skipped"] == {} and fret.stats["relabel"]["skipped"] == {}
    generation = [r for r in again.history if hasattr(r, "prompt")]
    assert len(generation) == 2  # only the two failed passages are asked again
    succeeded = set(flaky.history) - flaky.failed
    assert not set(again.history) & succeeded  # no call that succeeded is repeated
    on_disk = [json.loads(line) for line in (out / "fret.jsonl").read_text().splitlines()]
    assert len(on_disk) == 12 and json.loads((out / "manifest.json").read_text())["counts"]["examples"] == 12
    for stage in STAGES:
        manifest = json.loads((out / stage / "manifest.json").read_text())
        assert manifest["status"] == "complete" and "llm_error" not in manifest["skips_by_reason"]

    third = FakeLLM()  # now finished: no LLM call at all
    assert list(build_fret(corpus, llm=third, embedder=embedder, config=CONFIG, output_dir=out)) == list(fret)
    assert third.history == []


def test_a_run_where_every_call_failed_is_retried(corpus, passages, embedder, tmp_path):
    """No network, or a wrong key: every call fails, and the next run must try them all again."""
    out = tmp_path / "run"
    down = Flaky([p.text for p in passages], "never ever", error="connection_error: no route to host")
    with pytest.raises(GeckoDistillError, match=r"no usable query for 12 passages; skips: \{'llm_error': 12\}"):
        build_fret(corpus, llm=down, embedder=embedder, config=CONFIG, output_dir=out)
    up = FakeLLM()
    assert len(build_fret(corpus, llm=up, embedder=embedder, config=CONFIG, output_dir=out)) == 12
    assert sum(hasattr(r, "prompt") for r in up.history) == 12


def test_a_safety_block_is_kept_and_counted_as_such(tmp_path):
    def make():
        return StageCheckpoint("generate", GeneratedQuery, key=lambda q: q.id, folder=tmp_path / "generate", fingerprint="fp")

    cp = make()
    cp.skip("p0#0", "llm_error", "safety_blocked: prompt blocked (SAFETY)")
    cp.skip("p1#0", "llm_error", "http_503: Service Unavailable after 3 attempts")
    cp.finish(["p0#0", "p1#0"], {})
    again = make()
    assert [(s.item_id, s.reason) for s in again.skips] == [("p0#0", "safety_blocked")]  # the 503 is retried
    assert not again.complete and again.done_ids == {"p0#0"}
    assert [json.loads(line)["item_id"] for line in (tmp_path / "generate" / "skips.jsonl").read_text().splitlines()] == ["p0#0"]


def test_gemini_503_items_are_retried_after_the_server_recovers(corpus, passages, embedder, tmp_path):
    """End to end through the real google-genai client against the fake Gemini server: the
    first three attempts at two passages' prompts answer 503 (one run's retries), later ones
    succeed."""
    pytest.importorskip("google.genai")
    from fake_servers import FakeGeminiServer

    from gecko_distill.config import GenerateConfig
    from gecko_distill.llm import get_llm

    key = "AIza-test-key-0123456789"
    options = dict(api_key=key, timeout_s=10.0, backoff_initial_s=0.01, backoff_max_s=0.05, max_attempts=3)
    path = tmp_path / "faulty.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()][:6]
    for row in rows[:2]:
        row["text"] = "[[fault:503,503,503]] " + row["text"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = FRetConfig(generate=GenerateConfig(max_attempts=1), retrieve=RetrieveConfig(top_n=4))
    out = tmp_path / "run"
    with FakeGeminiServer(api_key=key, hang_s=1.0) as server:
        gemini = get_llm("gemini:gemini-2.5-flash", base_url=server.url, **options)
        first = build_fret(path, llm=gemini, scorer=FakeLLM(), embedder=embedder, config=config, output_dir=out)
        assert len(first) == 4 and first.stats["generate"]["skipped"] == {"llm_error": 2}
        assert server.outcomes() == {"ok": 4, "503": 6}
        sent = len(server.log)

        gemini = get_llm("gemini:gemini-2.5-flash", base_url=server.url, **options)
        fret = build_fret(path, llm=gemini, scorer=FakeLLM(), embedder=embedder, config=config, output_dir=out)
        retried = server.log[sent:]
        assert len(fret) == 6 and fret.stats["generate"]["skipped"] == {}
        assert len(retried) == 2 and all(r.outcome == "ok" and "[[fault:" in r.prompt for r in retried)


# -- 2. a damaged finished stage is repaired ---------------------------------------------------
@pytest.mark.parametrize("stage", ["relabel", "generate"])
def test_a_cut_records_file_of_a_finished_stage_is_redone(corpus, embedder, tmp_path, stage, caplog):
    out = tmp_path / "run"
    first = build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    records = out / stage / "records.jsonl"
    raw = records.read_bytes()
    last = raw.rstrip(b"\n").rfind(b"\n") + 1
    records.write_bytes(raw[: last + (len(raw) - last) // 2])  # the last line cut in half
    llm = FakeLLM()
    fret = build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=out)
    assert list(fret) == list(first) and len(fret) == 12
    assert llm.history == []  # redone from the LLM cache: no call repeated
    assert len(records.read_text().splitlines()) == 12
    assert "its manifest counts 12 records" in caplog.text
    assert json.loads((out / stage / "manifest.json").read_text())["counts"]["records"] == 12


# -- 3. the embedder fingerprint follows the model ---------------------------------------------
@pytest.fixture(scope="module")
def model_copies(tmp_path_factory):
    """Two copies of the default embedder's folder; the second with other weights."""
    from safetensors.torch import load_file, save_file

    from gecko_distill.paths import default_embedder_path

    root = tmp_path_factory.mktemp("models")
    a, b = root / "a", root / "b"
    shutil.copytree(default_embedder_path(), a)
    shutil.copytree(a, b)
    weights = load_file(b / "model.safetensors")
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}, b / "model.safetensors")
    return a, b


def test_a_path_embedder_is_identified_by_its_files(model_copies, tmp_path):
    from gecko_distill.fret.retrieve import embedder_name

    a, b = model_copies
    identity = embedder_name(a)
    assert identity != "PosixPath" and identity.startswith(str(a.resolve()))
    assert embedder_name(str(a)) == identity == embedder_name(a)
    moved = tmp_path / "a"
    shutil.copytree(a, moved)
    weights = moved / "model.safetensors"
    before = embedder_name(moved)
    retrained = bytearray(weights.read_bytes())
    for offset in range(1000, len(retrained), len(retrained) // 10):  # other weights, same size
        retrained[offset] ^= 0xFF
    weights.write_bytes(bytes(retrained))
    assert embedder_name(moved) != before
    (moved / "config_sentence_transformers.json").write_text("{}")
    assert embedder_name(moved) not in (before, identity)


def test_another_path_embedder_makes_the_retrieve_stage_stale(model_copies, passages, tmp_path):
    a, b = model_copies
    out = tmp_path / "run"
    texts = [p.text for p in passages[:6]]
    build_fret(texts, llm=FakeLLM(), embedder=a, config=CONFIG, output_dir=out)
    with pytest.raises(StaleOutputError, match="run/retrieve: refusing to reuse the 'retrieve' stage"):
        build_fret(texts, llm=FakeLLM(), embedder=b, config=CONFIG, output_dir=out)
    llm = FakeLLM()
    build_fret(texts, llm=llm, embedder=Path(str(a)), config=CONFIG, output_dir=out)  # the same model: reused
    assert llm.history == []


# -- 4. one run per output folder ---------------------------------------------------------------
def test_a_second_run_on_the_same_folder_is_refused(corpus, embedder, tmp_path):
    from gecko_distill._io import lock_output_folder

    out = tmp_path / "run"
    llm = FakeLLM()
    with lock_output_folder(out):  # another run holds it
        with pytest.raises(GeckoDistillError, match=f"{out}: another run is using this output folder"):
            build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=out)
    assert llm.history == [] and not (out / "generate").exists()
    assert len(build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=out)) == 12


def test_two_concurrent_cli_runs_never_duplicate_records(corpus, tmp_path):
    """Run the same command twice at once: one may be refused, and no stage file holds a line twice."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "gecko_distill.cli",
        "build-fret",
        str(corpus),
        "--out",
        str(out),
        "--llm",
        "fake",
        "--top-n",
        "4",
    ]
    env = {**os.environ, "GECKO_DISTILL_NO_PROGRESS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert any(code == 0 for code, _ in results)
    for code, err in results:
        assert code == 0 or (code == 2 and "another run is using this output folder" in err and "Traceback" not in err)
    for stage in STAGES:
        lines = (out / stage / "records.jsonl").read_text().splitlines()
        assert len(lines) == len(set(lines)) == 12


def test_the_lock_of_a_killed_run_does_not_block(corpus, embedder, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom gecko_distill._io import lock_output_folder\n"
            f"with lock_output_folder({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GeckoDistillError, match="another run is using"):
            build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".lock").exists()  # left behind, and harmless
    assert len(build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)) == 12


def test_generate_triplets_locks_its_folder(tmp_path):
    from gecko_distill._io import lock_output_folder
    from gecko_distill.e5.synth import generate_triplets

    with lock_output_folder(tmp_path / "synth"):
        with pytest.raises(GeckoDistillError, match="another run is using this output folder"):
            generate_triplets(FakeLLM(), output_dir=tmp_path / "synth")


# -- 5. the prices file and the embedder are checked before any work ---------------------------
def test_a_missing_prices_file_is_an_error_before_any_work(corpus, embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("GECKO_DISTILL_PRICES", str(tmp_path / "missing.json"))
    llm = FakeLLM()
    with pytest.raises(InputError, match=r"missing.json: prices file \(--prices, or \$GECKO_DISTILL_PRICES\) not found"):
        build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert llm.history == [] and not (tmp_path / "run" / "generate").exists()


def test_cli_missing_prices_file_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GECKO_DISTILL_PRICES", "")  # restored afterwards: the command sets it from --prices
    code = main(
        [
            "build-fret",
            str(corpus),
            "--out",
            str(tmp_path / "cli"),
            "--llm",
            "fake",
            "--top-n",
            "4",
            "--prices",
            str(tmp_path / "nope.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "nope.json: prices file" in err and "not found" in err
    assert not (tmp_path / "cli" / "generate").exists()


def test_a_missing_embedder_folder_is_an_error_before_any_work(corpus, tmp_path):
    llm = FakeLLM()
    with pytest.raises(InputError, match=r"no-model: embedder not found"):
        build_fret(corpus, llm=llm, embedder=tmp_path / "no-model", config=CONFIG, output_dir=tmp_path / "run")
    with pytest.raises(InputError, match=r"no-model: embedder not found"):
        build_fret(corpus, llm=llm, embedder=str(tmp_path / "no-model"), config=CONFIG)
    assert llm.history == []


# -- 6. filesystem problems are one clear error -------------------------------------------------
def test_out_is_an_existing_file(corpus, tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(InputError, match=f"{tmp_path / 'out'}: is a file, not an output folder"):
        build_fret(corpus, llm=FakeLLM(), config=CONFIG, output_dir=tmp_path / "out")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_folder_that_is_a_file_is_found_before_any_work(corpus, embedder, tmp_path, stage):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / stage).write_text("x")
    llm = FakeLLM()
    with pytest.raises(InputError, match=f"run/{stage}: is a file, but the '{stage}' stage keeps its output in a folder"):
        build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert llm.history == []


def test_a_checkpoint_folder_that_is_a_file(tmp_path):
    (tmp_path / "generate").write_text("x")
    with pytest.raises(InputError, match="generate: is a file, but the 'generate' stage keeps its output in a folder"):
        StageCheckpoint("generate", GeneratedQuery, key=lambda q: q.id, folder=tmp_path / "generate", fingerprint="fp")


@pytest.mark.parametrize("name", ["fret.jsonl", "manifest.json", "llm_cache.sqlite"])
def test_an_output_file_that_is_a_folder_is_found_before_any_work(corpus, embedder, tmp_path, name):
    (tmp_path / "run" / name).mkdir(parents=True)
    llm = FakeLLM()
    with pytest.raises(InputError, match=f"run/{name}: is a folder"):
        build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert llm.history == []


def test_a_stage_records_file_that_is_a_folder_is_found_before_any_work(corpus, embedder, tmp_path):
    (tmp_path / "run" / "relabel" / "records.jsonl").mkdir(parents=True)
    llm = FakeLLM()
    with pytest.raises(InputError, match=r"run/relabel/records.jsonl: is a folder"):
        build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert llm.history == []


@pytest.mark.parametrize("content", [b"this is not a database at all, just text\n", b"SQLite format 3\x00" + b"\x07" * 600])
def test_a_corrupt_llm_cache_is_one_clear_error(corpus, embedder, tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "llm_cache.sqlite").write_bytes(content)
    with pytest.raises(InputError, match=r"run/llm_cache.sqlite: the LLM cache is damaged .*delete it"):
        build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")


def test_a_truncated_stage_manifest_is_named_and_overwrite_rebuilds(corpus, embedder, tmp_path):
    out = tmp_path / "run"
    first = build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    manifest = out / "retrieve" / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(InputError, match=r"run/retrieve/manifest.json: the 'retrieve' stage manifest is damaged \(invalid JSON"):
        build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    llm = FakeLLM()
    assert list(build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=out, overwrite=True)) == list(first)
    assert llm.history == []  # rebuilt from the LLM cache


@pytest.mark.parametrize(
    "problem", ["out_is_file", "stage_is_file", "fret_is_folder", "corrupt_cache", "bad_manifest", "records_is_folder"]
)
def test_cli_filesystem_problems_are_one_line(corpus, tmp_path, problem):
    out = tmp_path / "o"
    args = [
        sys.executable,
        "-m",
        "gecko_distill.cli",
        "build-fret",
        str(corpus),
        "--out",
        str(out),
        "--llm",
        "fake",
        "--top-n",
        "4",
        "--limit",
        "4",
    ]
    if problem == "bad_manifest":
        assert subprocess.run(args, capture_output=True).returncode == 0
        (out / "generate" / "manifest.json").write_text('{"stage": "gene')
    elif problem == "out_is_file":
        out.write_text("x")
    else:
        out.mkdir()
        if problem == "stage_is_file":
            (out / "relabel").write_text("x")
        elif problem == "records_is_folder":
            (out / "relabel" / "records.jsonl").mkdir(parents=True)
        elif problem == "fret_is_folder":
            (out / "fret.jsonl").mkdir()
        else:
            (out / "llm_cache.sqlite").write_text("garbage")
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "GECKO_DISTILL_NO_PROGRESS": "1"})
    assert proc.returncode == 2 and proc.stderr.startswith("gecko-distill: error: ") and "Traceback" not in proc.stderr
    assert str(out) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    if problem != "bad_manifest":  # found before any work
        assert not (out / "generate").is_dir() or not any((out / "generate").iterdir())


_READER = textwrap.dedent(
    """
    import json, sys
    from gecko_distill import FRetConfig, RetrieveConfig, build_fret
    from gecko_distill.testing import FakeLLM
    try:
        fret = build_fret(sys.argv[1], llm=FakeLLM(), config=FRetConfig(retrieve=RetrieveConfig(top_n=4)), output_dir=sys.argv[2])
        print(json.dumps({"examples": len(fret)}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    """
)


def read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        path.chmod(path.stat().st_mode & ~0o222)


def writable_again(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def _without_root_powers() -> None:
    """In the child, before exec: drop the capabilities that let root write anywhere
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so file modes apply to it."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only_run(corpus: Path, out: Path) -> dict:
    """Run build_fret in another process while ``out`` cannot be written (its write bits are
    off; a root process also loses the capabilities that would ignore them)."""
    read_only(out)
    try:
        env = {**os.environ, "GECKO_DISTILL_NO_PROGRESS": "1"}
        preexec = _without_root_powers if os.geteuid() == 0 else None
        proc = subprocess.run(
            [sys.executable, "-c", _READER, str(corpus), str(out)],
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=preexec,
            timeout=600,
        )
    finally:
        writable_again(out)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_finished_run_in_a_read_only_folder_is_read_without_writing(corpus, tmp_path):
    out = tmp_path / "run"
    first = build_fret(corpus, llm=FakeLLM(), config=CONFIG, output_dir=out)
    before = files_of(out)
    assert read_only_run(corpus, out) == {"examples": len(first)}
    assert files_of(out) == before


def test_an_unfinished_run_in_a_read_only_folder_is_one_clear_error(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    result = read_only_run(corpus, out)
    assert result["error"] == "InputError" and f"{out}/generate: cannot write" in result["message"]
    assert "read-only" in result["message"]
    assert list(out.iterdir()) == []


# -- 7. Python API misuse --------------------------------------------------------------------
@pytest.mark.parametrize(("passages", "message"), [(None, "passages is None"), (b"ls lists files", "passages is bytes")])
def test_passages_of_the_wrong_type_are_a_clear_error(passages, message):
    with pytest.raises(InputError, match=message):
        build_fret(passages, llm=FakeLLM())


def test_a_dict_config_and_an_llm_name_are_accepted(passages, embedder):
    texts = [p.text for p in passages[:5]]
    fret = build_fret(texts, llm="fake", embedder=embedder, config={"retrieve": {"top_n": 4}})
    assert len(fret) == 5 and fret.stats["retrieve"]["top_n"] == 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"retrieve": {"top_n": 2}}, r"config: retrieve.top_n: .*at least 3 candidates are needed"),
        ({"retreive": {}}, r"config: retreive: Extra inputs are not permitted"),
        (RetrieveConfig(), "config must be an FRetConfig or a dict of its fields, not RetrieveConfig"),
    ],
)
def test_an_invalid_config_names_the_field(config, message):
    with pytest.raises(InputError, match=message):
        build_fret(["a passage"], llm=FakeLLM(), config=config)


def test_an_llm_of_the_wrong_type_is_a_clear_error():
    with pytest.raises(InputError, match="llm must be an LLM backend"):
        build_fret(["a passage"], llm=42)
    with pytest.raises(GeckoDistillError, match="unknown LLM 'no-such-llm'"):
        build_fret(["a passage"], llm="no-such-llm")


def test_top_n_below_three_is_refused():
    from pydantic import ValidationError

    with pytest.raises(
        ValidationError, match="at least 3 candidates are needed .*relabel needs a positive, a negative and one more"
    ):
        RetrieveConfig(top_n=2)
    assert RetrieveConfig(top_n=3).top_n == 3


def test_a_finished_run_with_a_separate_scorer_is_reused(corpus, embedder, tmp_path):
    """The relabel fingerprint once named the scorer only when its cache was not empty, so the
    rerun of a finished run with ``scorer=`` refused its own relabel stage."""
    out = tmp_path / "run"
    first = build_fret(
        corpus, llm=FakeLLM(can_score=False, name="chat-only"), scorer=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out
    )
    teacher, scorer = FakeLLM(can_score=False, name="chat-only"), FakeLLM()
    again = build_fret(corpus, llm=teacher, scorer=scorer, embedder=embedder, config=CONFIG, output_dir=out)
    assert list(again) == list(first) and teacher.history == [] and scorer.history == []


def test_generate_triplets_retries_a_failed_brainstorm_and_writes_triplets_for_its_tasks(tmp_path):
    from gecko_distill.e5.config import SynthConfig
    from gecko_distill.e5.synth import generate_triplets

    def triplet(query: str) -> str:
        return json.dumps(
            {
                "user_query": query,
                "positive_document": f"A guide that answers: {query}.",
                "hard_negative_document": f"A related text that does not answer: {query}.",
            }
        )

    class BrainstormDown(FakeLLM):
        def generate(self, requests):
            if not self.history:  # the first call is the brainstorm
                self.history.extend(requests)
                return [Generation(error="http_503: unavailable") for _ in requests]
            return super().generate(requests)

    config = SynthConfig(categories=("short-long",), tasks="both", tasks_per_category=1, triplets_per_task=1, max_attempts=1)
    first = generate_triplets(
        BrainstormDown(replies=[triplet(f"builtin question {i}") for i in range(50)]), config, output_dir=tmp_path
    )
    assert first.stats["brainstorm"]["skipped"] == {"llm_error": 1} and first.records
    llm = FakeLLM(replies=[json.dumps(["Given a question about gardening, retrieve answers."]), triplet("grow tomatoes")])
    again = generate_triplets(llm, config, output_dir=tmp_path)
    assert len(llm.history) == 2 and again.stats["brainstorm"]["skipped"] == {}
    assert len(again.records) == len(first.records) + 1 and "grow tomatoes" in {e.query for e in again.records}
