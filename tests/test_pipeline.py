import json
import subprocess
import sys

import pytest
from test_train import ONE_TINY_STEP

from gecko_distill import FRetConfig, FRetExample, RelabelConfig, RetrieveConfig, StaleOutputError, build_fret
from gecko_distill.cli import main
from gecko_distill.testing import FakeLLM

CONFIG = FRetConfig(retrieve=RetrieveConfig(top_n=4))


@pytest.fixture
def corpus(pydoc_passages, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n" for p in pydoc_passages[:12]))
    return path


def test_build_fret_writes_stages_fret_jsonl_and_manifest(corpus, embedder, tmp_path):
    out = tmp_path / "run"
    fret = build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=out)
    assert len(fret) == 12 and all(isinstance(e, FRetExample) for e in fret)
    assert all(e.positive.id != e.negative.id and e.negative.id != e.seed_passage_id for e in fret)
    on_disk = [FRetExample.model_validate_json(line) for line in (out / "fret.jsonl").read_text().splitlines()]
    assert on_disk == list(fret)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"] == "fake-llm" and manifest["counts"] == {"passages": 12, "examples": 12}
    assert manifest["config"]["retrieve"]["top_n"] == 4 and len(manifest["config_hash"]) == 64
    for stage in ("generate", "retrieve", "relabel"):
        stage_manifest = json.loads((out / stage / "manifest.json").read_text())
        assert stage_manifest["status"] == "complete" and stage_manifest["library_version"]
    relabel = fret.stats["relabel"]
    assert fret.stats["generate"]["llm_calls"] == 12 and relabel["llm_calls"] + relabel["llm_cached"] == 48


def test_rerun_makes_no_llm_calls(corpus, embedder, tmp_path):
    first = build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    llm = FakeLLM()
    again = build_fret(corpus, llm=llm, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert llm.history == [] and list(again) == list(first)


def test_interrupted_run_resumes_without_repeating_llm_calls(corpus, embedder, tmp_path):
    class Crashing(FakeLLM):
        def score(self, requests):
            if sum(1 for r in self.history if hasattr(r, "continuation")) >= 20:
                raise KeyboardInterrupt  # killed mid-relabel
            return super().score(requests)

    crashing = Crashing()
    in_small_chunks = CONFIG.model_copy(update={"relabel": RelabelConfig(batch_size=2)})
    with pytest.raises(KeyboardInterrupt):
        build_fret(corpus, llm=crashing, embedder=embedder, config=in_small_chunks, output_dir=tmp_path / "run")
    answered = len(crashing.history)
    resumed = FakeLLM()
    fret = build_fret(corpus, llm=resumed, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    assert len(fret) == 12 and len({e.id for e in fret}) == 12
    # the resumed run asks nothing that was answered before (identical requests come from the cache)
    assert answered > 12 and len(resumed.history) > 0
    assert not set(resumed.history) & set(crashing.history)
    assert all(hasattr(r, "continuation") for r in resumed.history)  # generation was not redone


def test_changed_config_is_refused_then_rebuilt_with_overwrite(corpus, embedder, tmp_path):
    build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    changed = FRetConfig(retrieve=RetrieveConfig(top_n=3))
    with pytest.raises(StaleOutputError, match=r"run/retrieve: refusing to reuse the 'retrieve' stage"):
        build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=changed, output_dir=tmp_path / "run")
    llm = FakeLLM()
    fret = build_fret(corpus, llm=llm, embedder=embedder, config=changed, output_dir=tmp_path / "run", overwrite=True)
    assert len(fret) == 12
    assert all(hasattr(r, "continuation") for r in llm.history)  # generate was reused, relabel redone


def test_changed_teacher_invalidates_every_llm_stage(corpus, embedder, tmp_path):
    build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    with pytest.raises(StaleOutputError, match="'generate' stage"):
        build_fret(corpus, llm=FakeLLM(name="other"), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")


def test_no_usable_query_is_a_clear_error(corpus, embedder):
    from gecko_distill import GeckoDistillError

    with pytest.raises(GeckoDistillError, match=r"wrote no usable query for 12 passages; skips: \{'unparseable': 12\}"):
        build_fret(corpus, llm=FakeLLM(replies=["nonsense"] * 36), embedder=embedder, config=CONFIG)


def test_cli_build_fret_prints_the_summary_table(corpus, tmp_path, capsys):
    code = main(["build-fret", str(corpus), "--out", str(tmp_path / "cli"), "--llm", "fake", "--top-n", "4", "--limit", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "stage" in out and "generate" in out and "positives that are not the seed" in out
    assert f"wrote 5 FRet examples to {tmp_path / 'cli'}/fret.jsonl" in out
    assert len((tmp_path / "cli" / "fret.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the corpus has no usable passages"),
        (b'{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', ":2: duplicate passage id 'a'"),
        (b'{"_id": "a", "text": "x"\n', ":1: invalid JSON"),
        (b'{"_id": "a", "text": "\xff"}\n', ":1: not valid UTF-8"),
    ],
)
def test_cli_bad_input_is_one_line_without_traceback(tmp_path, content, message):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "gecko_distill.cli", "build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm", "fake"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("gecko-distill: error: ")


def test_a_teacher_that_cannot_score_uses_a_second_scorer(corpus, embedder, tmp_path):
    teacher, scorer = FakeLLM(can_score=False, name="chat-only"), FakeLLM()
    fret = build_fret(corpus, llm=teacher, embedder=embedder, config=CONFIG, output_dir=tmp_path / "run", scorer=scorer)
    assert len(fret) == 12 and fret.stats["relabel"]["ql_available"] is True
    assert all(hasattr(r, "prompt") for r in teacher.history) and all(hasattr(r, "continuation") for r in scorer.history)
    assert (tmp_path / "run" / "scorer_cache.sqlite").exists()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["stats"]["relabel"]["llm_cost_usd"] == 0.0


def test_summary_reports_relevance_only_fallback_and_backend_notes(corpus, embedder):
    from gecko_distill.report import summary_table

    class ChatOnly(FakeLLM):
        notes = ["relevance by graded labels: the API returned no log-probabilities"]

    fret = build_fret(corpus, llm=ChatOnly(can_score=False), embedder=embedder, config=CONFIG)
    table = summary_table(fret.stats)
    assert len(fret) == 12 and fret.stats["relabel"]["ql_available"] is False
    assert "note: relevance by graded labels" in table
    assert "note: the teacher cannot score query likelihood" in table
    assert "estimated LLM cost: $0.0000" in table


def test_cli_prices_file_sets_the_cost_estimate(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GECKO_DISTILL_PRICES", raising=False)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake-llm": {"input_per_mtok": 1000000, "output_per_mtok": 0}}))
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
            "--limit",
            "3",
            "--prices",
            str(prices),
        ]
    )
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    generate = manifest["stats"]["generate"]
    assert code == 0 and generate["llm_cost_usd"] == generate["llm_prompt_tokens"] > 0
    assert "estimated LLM cost: $" in capsys.readouterr().out


def _beir_from(corpus, folder, n_queries=3):
    """A BEIR folder over ``corpus``: one query per passage, made from its title."""
    import shutil

    (folder / "qrels").mkdir(parents=True)
    shutil.copy(corpus, folder / "corpus.jsonl")
    docs = [json.loads(line) for line in corpus.read_text().splitlines()][:n_queries]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"about {d['title']}"}) + "\n" for i, d in enumerate(docs))
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{d['_id']}\t1\n" for i, d in enumerate(docs))
    )
    return folder


def test_cli_run_builds_trains_evaluates_and_reuses_the_model(corpus, tmp_path, capsys):
    from gecko_distill.embedder.evaluate import RetrievalReport

    beir, out = _beir_from(corpus, tmp_path / "beir"), tmp_path / "run"
    args = [
        "run",
        str(corpus),
        "--out",
        str(out),
        "--eval",
        str(beir),
        "--llm",
        "fake",
        "--top-n",
        "4",
        "--limit",
        "8",
        *ONE_TINY_STEP,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "FRet: 8 examples" in printed and "model: saved to" in printed and "| distilled |" in printed
    base, distilled = (RetrievalReport.load(out / "reports" / f"{name}.json") for name in ("base", "distilled"))
    assert (base.model, base.config.input_format) == ("base", "plain")
    assert (distilled.model, distilled.config.input_format) == ("distilled", "plain")  # trained in the base model's own format
    assert [row.dim for row in distilled.scores] == [384, 64] and distilled.num_queries == 3
    assert (out / "quality.png").stat().st_size > 10_000
    weights = out / "model" / "model.safetensors"
    trained_at = weights.stat().st_mtime_ns

    assert main(args) == 0  # same data, same settings: the model is reused, not retrained
    assert "reusing it" in capsys.readouterr().out and weights.stat().st_mtime_ns == trained_at
    assert main(args + ["--lr", "1e-4"]) == 2  # other settings: never a stale model, and no silent replacement
    assert "output folder is not empty" in capsys.readouterr().err
    assert main(args + ["--lr", "1e-4", "--overwrite"]) == 0
    assert "model: saved to" in capsys.readouterr().out and weights.stat().st_mtime_ns != trained_at


def test_cli_run_checks_the_eval_folder_before_any_llm_call(corpus, tmp_path, capsys):
    args = ["run", str(corpus), "--out", str(tmp_path / "run"), "--eval", str(tmp_path / "missing"), "--llm", "fake"]
    assert main(args) == 2
    assert "missing: not a folder (expected a BEIR folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("attribute", "edited", "stage"),
    [("generation_prompt_id", lambda language: "edited-prompt", "generate"), ("SCORING_PROMPT_ID", "edited-prompt", "relabel")],
)
def test_an_edited_prompt_makes_saved_output_stale(corpus, embedder, tmp_path, monkeypatch, attribute, edited, stage):
    import gecko_distill.fret.pipeline as pipeline

    build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
    monkeypatch.setattr(pipeline, attribute, edited)
    with pytest.raises(StaleOutputError, match=f"run/{stage}: refusing to reuse the '{stage}' stage output"):
        build_fret(corpus, llm=FakeLLM(), embedder=embedder, config=CONFIG, output_dir=tmp_path / "run")
