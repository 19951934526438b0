"""Quiet, honest output (issue 14, part 4): a run prints its results and our own warnings, not
third-party noise; ``-v`` shows everything; log lines never share a line with a progress bar;
bars only on a terminal; ``--quiet`` prints results only."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import types
import warnings
from pathlib import Path

import pytest

from gecko_distill import _quiet
from gecko_distill.corpus import load_passages
from gecko_distill.records import Passage
from gecko_distill.testing import FakeLLM

#: What third-party libraries print that a default run must not show.
NOISE = ("faiss.loader", "AVX", "Loading weights", "Token indices sequence length", "FutureWarning", "it/s]", "%|")
LONG_TEXT = " ".join(f"word{i} geckos climb glass" for i in range(200))  # 800 words: more tokens than MiniLM reads


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    lines = [
        {"_id": f"d{i}", "title": "Geckos", "text": f"Passage {i}: geckos climb glass walls with {i + 2} toes."} for i in range(8)
    ]
    lines += [{"_id": f"copy{i}", "text": lines[i]["text"]} for i in range(3)]  # three duplicates: one warning
    lines.append({"_id": "long", "text": LONG_TEXT})
    lines.append({"_id": "short", "text": "Geckos."})  # its query is too short: a skip logged while the bar is open
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GECKO_DISTILL_NO_PROGRESS", "HF_HUB_DISABLE_PROGRESS_BARS")}
    return {**env, "GECKO_DISTILL_CACHE": str(cache), "COLUMNS": "120"}


def build_fret(corpus: Path, out: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gecko_distill.cli",
        *options,
        "build-fret",
        str(corpus),
        "--out",
        str(out),
        "--llm",
        "fake",
        "--top-n",
        "4",
    ]


def run_in_terminal(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Run with stderr on a pseudo-terminal; stdout and what the terminal shows on each line."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns (0x0: no bar)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out = proc.communicate(timeout=900)[0].decode()
    reader.join(timeout=30)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    raw = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    return out, raw


def shown(raw: str) -> list[str]:
    """Each line as a terminal shows it: what follows its last carriage return (tqdm redraws)."""
    return [line.rsplit("\r", 1)[-1] for line in raw.split("\n")]


# -- the command line ---------------------------------------------------------------------------------
def test_a_default_run_prints_results_and_no_noise(corpus, tmp_path):
    proc = subprocess.run(
        build_fret(corpus, tmp_path / "o"), capture_output=True, text=True, env=environment(tmp_path), timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"wrote \d+ FRet examples", proc.stdout) and "generate" in proc.stdout  # the results
    err = proc.stderr.splitlines()
    assert not [line for line in err if any(noise in line for noise in NOISE)], err
    assert len([line for line in err if "corpus: skipped 3 passages (duplicate_text 3)" in line]) == 1, err
    assert len(err) <= 3, err  # our own warnings only: no bars off a terminal, no info logs

    quiet = subprocess.run(
        build_fret(corpus, tmp_path / "o", "--quiet"), capture_output=True, text=True, env=environment(tmp_path), timeout=900
    )
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.splitlines()[-1] == proc.stdout.splitlines()[-1]


def test_verbose_on_a_terminal_shows_everything_with_logs_above_the_bars(corpus, tmp_path):
    out, raw = run_in_terminal(build_fret(corpus, tmp_path / "o", "-v"), environment(tmp_path))
    assert re.search(r"wrote \d+ FRet examples", out)
    lines = shown(raw)
    assert any(line.startswith("INFO gecko_distill.") for line in lines), raw[-2000:]
    assert "faiss.loader" in raw  # third-party output is back with -v
    assert re.search(r"generate: +\d+%\|", raw)  # a progress bar on a terminal
    glued = [line for line in lines if "%|" in line and "INFO" in line]
    assert not glued  # logging_redirect_tqdm: a log line is never drawn onto a bar
    # each passage skipped is listed at debug level only, the count is one warning
    assert sum("corpus: skipped 3 passages" in line for line in lines) == 1


def test_the_glue_check_can_fail():
    raw = "generate:   0%|          | 0/16 [00:00<?, ?query/s]INFO gecko_distill.llm: loading\n"
    assert [line for line in shown(raw) if "%|" in line and "INFO" in line]
    cleared = "generate:   0%|          | 0/16\r                    \rINFO gecko_distill.llm: loading\n"
    assert not [line for line in shown(cleared) if "%|" in line and "INFO" in line]


# -- the pieces --------------------------------------------------------------------------------------
def test_the_teacher_loads_before_the_generate_bar_opens(monkeypatch):
    import gecko_distill._resample as resample
    from gecko_distill.fret.generate import generate

    events: list[str] = []

    class LazyTeacher(FakeLLM):
        def load(self) -> None:
            events.append("load")

    real_progress = resample.progress
    monkeypatch.setattr(resample, "progress", lambda **kwargs: events.append("bar") or real_progress(**kwargs))
    generate([Passage(id="ls", text="ls lists the contents of a directory.")], LazyTeacher())
    assert events == ["load", "bar"]
    events.clear()
    generate([], LazyTeacher())  # nothing to write: nothing to load
    assert "load" not in events


def test_duplicate_passages_are_one_warning(caplog):
    with caplog.at_level(logging.DEBUG, logger="gecko_distill.corpus"):
        result = load_passages(["Geckos climb glass."] * 6 + ["  ", "Lizards bask."])
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "skipped 6 passages (duplicate_text 5, empty_text 1)" in warned[0].getMessage()
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 6  # each one, for -vv
    assert len(result.records) == 2


def test_counting_long_passages_does_not_warn_about_sequence_length():
    from transformers import AutoTokenizer

    from gecko_distill.fret.retrieve import _count_over_limit
    from gecko_distill.paths import default_embedder_path

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        model = types.SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(str(default_embedder_path())))
        assert _count_over_limit(model, [LONG_TEXT, "short"], max_tokens=256) == 1
        assert not records
        model.tokenizer([LONG_TEXT])  # the same count without verbose=False: the check can fail
        assert any("Token indices sequence length" in r.getMessage() for r in records)
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def restore_quiet():
    yield
    _quiet._apply(None)


def test_quiet_hides_third_party_noise_and_quiet_false_restores_it(restore_quiet):
    from huggingface_hub.utils import are_progress_bars_disabled

    before = are_progress_bars_disabled()
    _quiet.quiet()
    assert are_progress_bars_disabled() and logging.getLogger("faiss.loader").level == logging.WARNING
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("`past_key_values` as a tuple of tuples is deprecated (one)", FutureWarning)
    assert not caught
    _quiet.quiet(False)
    assert are_progress_bars_disabled() == before and logging.getLogger("faiss.loader").level == logging.NOTSET
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("`past_key_values` as a tuple of tuples is deprecated (two)", FutureWarning)
    assert len(caught) == 1


def test_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv(_quiet.NO_PROGRESS_ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: False, write=lambda s: None))
    assert not _quiet.bars_enabled()
    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: True, write=lambda s: None))
    assert _quiet.bars_enabled()
    monkeypatch.setenv(_quiet.NO_PROGRESS_ENV, "1")
    assert not _quiet.bars_enabled()


def test_the_wrappers_load_the_teacher_they_wrap(tmp_path, monkeypatch):
    import gecko_distill.llm.registry as registry
    from gecko_distill.fret.generate import load_backend
    from gecko_distill.llm.cache import CachedLLM
    from gecko_distill.llm.registry import LazyLLM

    loaded: list[str] = []

    class Teacher(FakeLLM):
        def load(self) -> None:
            loaded.append(self.name)

    load_backend(CachedLLM(Teacher(name="inner"), tmp_path / "cache.sqlite"))  # as build_fret wraps the teacher
    assert loaded == ["inner"]
    CachedLLM(FakeLLM(), tmp_path / "other.sqlite").load()  # a backend with nothing to load: nothing happens

    lazy = LazyLLM("gemma3-270m")
    monkeypatch.setattr(registry, "get_llm", lambda name, **options: loaded.append(name) or FakeLLM(name=lazy.name))
    load_backend(CachedLLM(lazy, tmp_path / "lazy.sqlite"))
    lazy.load()  # loaded once
    assert loaded == ["inner", "gemma3-270m"] and lazy.generate([]) == []


def test_the_dequantisation_bar_is_muted(tmp_path, monkeypatch, restore_quiet):
    """``_dequantised`` runs transformers' GGUF loading with its module's tqdm switched off
    (the real dequantisation takes a minute: the loader is replaced by one that draws the bar)."""
    pytest.importorskip("gguf")
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from gecko_distill.llm import transformers_backend

    bars: list[bool] = []

    class Saved:
        def save_pretrained(self, folder) -> None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "config.json").write_text("{}")

    class Model(Saved):
        config = types.SimpleNamespace()

    def from_pretrained(*args, **kwargs):
        bars.append(gguf_utils.tqdm(range(2)).disable)
        return Model()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Saved())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    monkeypatch.setattr(transformers_backend, "gguf_backend_name", lambda path: "gguf:model@abc123")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"")
    _quiet.quiet()
    assert Path(transformers_backend._dequantised(gguf, tmp_path / "cache")).name == "model-abc123"
    _quiet.quiet(False)  # -v: the bar is drawn
    transformers_backend._dequantised(gguf, tmp_path / "cache-verbose")
    assert bars == [True, False] and gguf_utils.tqdm(range(1)).disable is False


def test_stage_bars_follow_bars_enabled(monkeypatch):
    from gecko_distill import _io

    monkeypatch.setattr(_io, "bars_enabled", lambda: False)
    assert _io.progress(3, "x", "item").disable
    monkeypatch.setattr(_io, "bars_enabled", lambda: True)
    with _io.progress(3, "x", "item") as bar:
        assert not bar.disable
