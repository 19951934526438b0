"""Every CLI failure is one line naming the file or option, with exit status 2 (issue 13).

Also the corpus rules behind those lines: --limit, lone surrogates, ids and titles, duplicate
texts (exact up to whitespace), and the summary's corpus row.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gecko_distill import InputError, load_passages
from gecko_distill.cli import main

PREFIX = "gecko-distill: error: "


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    """The single line the CLI wrote to stderr (asserting that it is exactly one)."""
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(PREFIX)
    return err[0][len(PREFIX) :]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    lines = [
        {"_id": f"d{i}", "title": "Geckos", "text": f"Passage {i}: geckos climb glass walls with {i + 2} toes."} for i in range(8)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# -- build-fret options: checked before any work, named as the user typed them ----------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--top-n", "0"], ["--top-n 0"]),
        (["--top-n", "-1"], ["--top-n -1"]),
        (["--queries-per-passage", "0"], ["--queries-per-passage 0"]),
        (["--temperature", "-1"], ["--temperature -1"]),
        (["--queries-per-passage", "2", "--temperature", "0"], ["--queries-per-passage", "--temperature"]),
        (["--limit", "0"], ["--limit 0"]),
        (["--limit", "-1"], ["--limit -1"]),
    ],
)
@pytest.mark.parametrize("command", ["build-fret", "run"])
def test_invalid_fret_options_name_the_option_before_any_work(tmp_path, capsys, command, options, named):
    out = tmp_path / "out"
    # the corpus does not exist: the option must be reported first, and nothing is written
    code = main([command, str(tmp_path / "missing.jsonl"), "--out", str(out), "--llm", "fake", *options])
    line = one_error_line(capsys)
    assert code == 2
    assert line.startswith("invalid option: ") and all(name in line for name in named), line
    assert "missing.jsonl" not in line and "top_n" not in line and "queries_per_passage" not in line
    assert not out.exists()


def test_invalid_train_option_names_the_option(tmp_path, capsys):
    code = main(["train", str(tmp_path / "fret"), "--out", str(tmp_path / "model"), "--lr", "0"])
    assert code == 2 and one_error_line(capsys).startswith("invalid option: --lr 0.0: ")


def test_limit_below_one_is_an_input_error():
    with pytest.raises(InputError, match="limit must be a positive number of passages, got 0"):
        load_passages(["one x", "two x"], limit=0)
    with pytest.raises(InputError, match="got -1"):
        load_passages(["one x"], limit=-1)


# -- filesystem problems -----------------------------------------------------------------------------
def test_a_folder_without_corpus_jsonl_is_one_line_naming_it(tmp_path, capsys):
    folder = tmp_path / "corpus.jsonl"
    folder.mkdir()
    assert main(["build-fret", str(folder), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys) == f"{folder}: a folder with no corpus.jsonl file in it"
    (folder / "corpus.jsonl").mkdir()  # a folder where the file should be
    assert main(["build-fret", str(folder), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys) == f"{folder}: a folder with no corpus.jsonl file in it"


def test_a_missing_corpus_is_one_line_naming_it(tmp_path, capsys):
    assert main(["build-fret", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys) == f"{tmp_path / 'nope.jsonl'}: file not found"


# -- the one top-level error path --------------------------------------------------------------------
def _failing_corpus(monkeypatch, exc: BaseException) -> None:
    import gecko_distill.corpus

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(gecko_distill.corpus, "load_passages", fail)


def test_an_unexpected_error_is_one_line_with_its_type_and_a_hint(corpus, tmp_path, capsys, monkeypatch):
    _failing_corpus(monkeypatch, RuntimeError("boom\nsecond line"))
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys) == "unexpected RuntimeError: boom second line (rerun with -v for the traceback)"


def test_verbose_adds_the_traceback_and_ends_with_the_error_line(corpus, tmp_path, capsys, monkeypatch):
    _failing_corpus(monkeypatch, RuntimeError("boom"))
    assert main(["-v", "build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):" and "RuntimeError: boom" in err
    assert err[-1] == f"{PREFIX}unexpected RuntimeError: boom"


def test_an_os_error_names_the_path(corpus, tmp_path, capsys, monkeypatch):
    _failing_corpus(monkeypatch, PermissionError(13, "Permission denied", "/data/corpus.jsonl"))
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys) == "/data/corpus.jsonl: Permission denied"


def test_a_stray_validation_error_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    from pydantic import ValidationError

    from gecko_distill.config import RetrieveConfig

    with pytest.raises(ValidationError) as caught:
        RetrieveConfig(batch_size=0)
    _failing_corpus(monkeypatch, caught.value)
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert one_error_line(capsys).startswith("invalid RetrieveConfig: batch_size: Input should be greater than or equal to 1")


def test_interrupt_keeps_its_resume_message(corpus, tmp_path, capsys, monkeypatch):
    _failing_corpus(monkeypatch, KeyboardInterrupt())
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["option", "nested folder"])
def test_no_traceback_from_the_command(tmp_path, case):
    folder = tmp_path / "corpus.jsonl"
    (folder / "corpus.jsonl").mkdir(parents=True)
    extra = ["--top-n", "0"] if case == "option" else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gecko_distill.cli",
            "build-fret",
            str(folder),
            "--out",
            str(tmp_path / "o"),
            "--llm",
            "fake",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(PREFIX)
    assert ("--top-n 0" if case == "option" else "a folder with no corpus.jsonl") in proc.stderr


# -- models: folders load offline, a missing folder is named, hub ids go to the hub ----------------
def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "geckos climb"}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "who climbs"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


def test_eval_of_a_missing_model_folder_names_it(tmp_path, capsys):
    missing = tmp_path / "runs" / "model"
    assert main(["eval", str(missing), str(_beir(tmp_path / "beir"))]) == 2
    assert one_error_line(capsys) == f"model folder not found: {missing}"


def test_a_path_like_model_name_is_never_sent_to_the_hub(monkeypatch):
    import sentence_transformers

    from gecko_distill.embedder.encoding import load_model

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", lambda *a, **k: pytest.fail(f"loaded {a}"))
    for name in ("./missing", "~/no/such/model", "runs/a/b", Path("missing")):
        with pytest.raises(InputError, match=f"model folder not found: {name}"):
            load_model(name)


def test_a_hub_id_is_loaded_through_the_hub(monkeypatch):
    import sentence_transformers

    from gecko_distill.embedder.encoding import load_model

    calls = []
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", lambda *a, **k: calls.append((a, k)) or "model")
    assert load_model("sentence-transformers/all-MiniLM-L6-v2", truncate_dim=64) == "model"
    (name,), settings = calls[0]
    assert name == "sentence-transformers/all-MiniLM-L6-v2" and settings.get("truncate_dim") == 64
    assert not settings.get("local_files_only")  # with a network, a hub id downloads


def test_an_uncached_hub_id_offline_is_one_line(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    from gecko_distill.embedder.encoding import load_model

    with pytest.raises(
        InputError,
        match=r"^gecko-test/not-cached: no such model folder, and the Hugging Face hub id "
        r"could not be loaded \(offline\? not cached\?\)",
    ):
        load_model("gecko-test/not-cached")
    assert main(["eval", "gecko-test/not-cached", str(_beir(tmp_path / "beir"))]) == 2
    assert one_error_line(capsys).startswith("gecko-test/not-cached: no such model folder")


# -- corpus rules ------------------------------------------------------------------------------------
def write_corpus(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(['{"_id": "ok", "text": "a fine passage"}', *lines]) + "\n")
    return path


def test_a_lone_surrogate_is_an_error_naming_the_line(tmp_path, capsys):
    path = write_corpus(tmp_path, r'{"_id": "s", "text": "bad \ud800 text"}')
    with pytest.raises(InputError, match=r"corpus.jsonl:2: passage 's' has a lone surrogate '\\ud800' in 'text'"):
        load_passages(path)
    assert main(["build-fret", str(path), "--out", str(tmp_path / "o"), "--llm", "fake"]) == 2
    assert ":2: passage 's' has a lone surrogate" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"_id": {"a": 1}, "text": "x y"}', "passage id {'a': 1} is not a string or an integer"),
        ('{"_id": true, "text": "x y"}', "passage id True is not a string or an integer"),
        ('{"_id": NaN, "text": "x y"}', "passage id nan is not a string or an integer"),
        ('{"_id": 1.5, "text": "x y"}', "passage id 1.5 is not a string or an integer"),
        ('{"_id": "t0", "title": 0, "text": "x y"}', "passage 't0' has a 'title' that is not a string: 0"),
        ('{"_id": "t7", "title": 7, "text": "x y"}', "passage 't7' has a 'title' that is not a string: 7"),
        ('{"_id": "tf", "title": false, "text": "x y"}', "passage 'tf' has a 'title' that is not a string: False"),
    ],
)
def test_odd_ids_and_titles_are_errors_naming_the_line(tmp_path, line, message):
    with pytest.raises(InputError) as caught:
        load_passages(write_corpus(tmp_path, line))
    assert str(caught.value).endswith(f"corpus.jsonl:2: {message}")


def test_integer_ids_and_null_titles_are_accepted(tmp_path):
    path = write_corpus(tmp_path, '{"_id": 7, "title": null, "text": "seven"}', '{"_id": "t", "text": "no title"}')
    assert [(p.id, p.title) for p in load_passages(path).records] == [("ok", ""), ("7", ""), ("t", "")]


def test_duplicates_are_exact_up_to_whitespace_and_keep_case():
    result = load_passages(["Geckos climb glass.", "geckos climb glass.", "Geckos  climb\nglass.", "GECKOS CLIMB GLASS."])
    assert [p.id for p in result.records] == ["p0", "p1", "p3"]
    assert result.skip_counts == {"duplicate_text": 1}


def test_the_summary_counts_the_corpus_as_read(corpus, tmp_path, capsys):
    with corpus.open("a") as f:
        for i in (1, 2):
            f.write(json.dumps({"_id": f"copy{i}", "text": f"Passage {i}: geckos climb glass walls with {i + 2} toes."}) + "\n")
        f.write(json.dumps({"_id": "blank", "text": "  "}) + "\n")
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake", "--top-n", "4"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("corpus"))
    assert row.split()[:6] == ["corpus", "11", "8", "duplicate_text", "2,", "empty_text"]
