"""run_mteb and ``gecko-distill mteb``: a local BEIR folder as a custom MTEB retrieval task, run
offline through the ``mteb`` package, and the model's prompts per task type.

MTEB's nDCG@10 on the local task must equal the library's own :func:`evaluate` in the same input
format: that holds only if MTEB embedded queries and documents exactly as our formatting does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_train import _distinct_topics  # the shared picker of pydoc passages with distinct titles

from gecko_distill.cli import mteb as mteb_command
from gecko_distill.embedder.evaluate import EvalConfig, evaluate
from gecko_distill.embedder.formatting import query_prompt
from gecko_distill.embedder.mteb_eval import TYPE_TASKS, beir_task, main_scores, mteb_prompts, run_mteb
from gecko_distill.errors import GeckoDistillError, InputError

mteb = pytest.importorskip("mteb")


@pytest.fixture(scope="module")
def beir_dir(pydoc_passages, tmp_path_factory) -> Path:
    """20 pydoc passages of distinct topics (no titles); each query is its passage's topic name."""
    folder = tmp_path_factory.mktemp("beir") / "pydoc-topics"
    (folder / "qrels").mkdir(parents=True)
    picked = _distinct_topics(pydoc_passages, 20)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": p.id, "title": "", "text": p.text}) + "\n" for p in picked))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": p.title}) + "\n" for i, p in enumerate(picked))
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{p.id}\t1\n" for i, p in enumerate(picked))
    )
    return folder


@pytest.fixture(scope="module")
def model_dir(embedder, tmp_path_factory) -> Path:
    """The offline MiniLM, saved as a model folder."""
    folder = tmp_path_factory.mktemp("models") / "minilm"
    embedder.save(str(folder))
    return folder


@pytest.fixture(scope="module")
def gecko_model_dir(model_dir: Path, tmp_path_factory) -> Path:
    """The same weights, marked as trained here in the Gecko format (as train's gecko_distill.json does)."""
    import shutil

    folder = tmp_path_factory.mktemp("models") / "minilm-gecko"
    shutil.copytree(model_dir, folder)
    (folder / "gecko_distill.json").write_text(json.dumps({"query_format": "gecko"}))
    return folder


def test_mteb_scores_a_local_task_as_our_evaluation_does(model_dir: Path, beir_dir: Path) -> None:
    results = run_mteb(model_dir, [beir_dir])
    ours = evaluate(model_dir, beir_dir, dims=[384], config=EvalConfig(input_format="plain"))
    assert [r.task_name for r in results] == ["pydoc-topics"]
    assert main_scores(results)["pydoc-topics"] == pytest.approx(ours.at(384).ndcg_at_10, abs=1e-4)


def test_a_model_trained_here_is_prompted_in_its_format(model_dir: Path, gecko_model_dir: Path, beir_dir: Path) -> None:
    gecko = main_scores(run_mteb(gecko_model_dir, [str(beir_dir)]))["pydoc-topics"]
    ours = evaluate(gecko_model_dir, beir_dir, dims=[384])  # the model's own format, from gecko_distill.json
    assert ours.config.input_format == "gecko"
    assert gecko == pytest.approx(ours.at(384).ndcg_at_10, abs=1e-4)
    plain = main_scores(run_mteb(model_dir, [beir_dir]))["pydoc-topics"]
    assert abs(gecko - plain) > 0.05  # the prompts changed what was embedded


def test_the_prompt_keys_are_the_ones_mteb_looks_up() -> None:
    from mteb.models.abs_encoder import get_prompt_name
    from mteb.types import PromptType

    prompts = mteb_prompts("gecko")
    sts = mteb.get_task("STSBenchmark").metadata
    assert get_prompt_name(prompts, sts, None) == "STS"
    assert prompts["STS"] == query_prompt(TYPE_TASKS["STS"], "gecko")
    retrieval = mteb.get_task("NFCorpus").metadata
    assert get_prompt_name(prompts, retrieval, PromptType.query) == "query"
    assert get_prompt_name(prompts, retrieval, PromptType.document) == "document"
    assert mteb.get_task("Banking77Classification").metadata.type in TYPE_TASKS


def test_the_output_folder_keeps_results_for_a_rerun(model_dir: Path, beir_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from sentence_transformers import SentenceTransformer

    first = main_scores(run_mteb(model_dir, [beir_dir], output_folder=tmp_path / "mteb"))
    saved = list((tmp_path / "mteb").rglob("pydoc-topics.json"))
    assert len(saved) == 1 and saved[0].parts[-3] == "local__minilm"

    def no_encoding(*args, **kwargs):
        raise AssertionError("a finished task was encoded again")

    monkeypatch.setattr(SentenceTransformer, "encode_query", no_encoding)
    monkeypatch.setattr(SentenceTransformer, "encode_document", no_encoding)
    assert main_scores(run_mteb(model_dir, [beir_dir], output_folder=tmp_path / "mteb")) == first


def test_unknown_tasks_and_offline_hub_tasks_are_one_line_errors(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(InputError, match="unknown MTEB task 'NoSuchTask123'"):
        run_mteb(model_dir, ["NoSuchTask123"])
    with pytest.raises(InputError, match="no MTEB task given"):
        run_mteb(model_dir, [])
    import datasets
    import huggingface_hub

    empty = tmp_path / "empty-hf-cache"  # offline, and with nothing cached: the task's data cannot be had
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(empty / "hub"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", empty / "datasets")
    with pytest.raises(GeckoDistillError, match=r"MTEB task SciFact: its data could not be loaded from .* \(offline\?\)"):
        run_mteb(model_dir, ["SciFact"])


def test_beir_task_metadata(beir_dir: Path) -> None:
    task = beir_task(beir_dir, name="pydoc", languages=["eng-Latn"])
    assert (task.metadata.name, task.metadata.type, task.metadata.main_score) == ("pydoc", "Retrieval", "ndcg_at_10")
    with pytest.raises(InputError, match="qrels file not found"):
        beir_task(beir_dir, split="dev")


def test_mteb_command(model_dir: Path, beir_dir: Path, tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="gecko-distill")
    mteb_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mteb", str(model_dir), str(beir_dir), "--batch-size", "8", "--out", str(tmp_path / "mteb")])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "main", "score"] and lines[2] == f"results in {tmp_path / 'mteb'}"
    assert list((tmp_path / "mteb").rglob("pydoc-topics.json"))
    name, score = lines[1].split()
    ours = evaluate(model_dir, beir_dir, dims=[384])
    assert name == "pydoc-topics" and float(score) == pytest.approx(ours.at(384).ndcg_at_10, abs=1e-4)
    with pytest.raises(InputError, match="--batch-size must be at least 1"):
        args = parser.parse_args(["mteb", str(model_dir), str(beir_dir), "--batch-size", "0"])
        args.func(args)


def test_eval_runs_mteb_tasks_as_the_mteb_command_does(model_dir: Path, beir_dir: Path, tmp_path: Path, capsys) -> None:
    from gecko_distill.cli import main

    out = tmp_path / "mteb"
    assert main(["eval", str(model_dir), "--mteb", str(beir_dir), "--mteb-out", str(out), "--batch-size", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "main", "score"] and lines[2] == f"results in {out}"
    name, score = lines[1].split()
    ours = evaluate(model_dir, beir_dir, dims=[384])
    assert name == "pydoc-topics" and float(score) == pytest.approx(ours.at(384).ndcg_at_10, abs=1e-4)

    # a BEIR folder and MTEB tasks in one call: the table, then the tasks (the finished one from --mteb-out)
    assert main(["eval", str(model_dir), str(beir_dir), "--dims", "64", "--mteb", str(beir_dir), "--mteb-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 64 |" in printed and f"pydoc-topics  {score}" in printed

    assert main(["eval", str(model_dir)]) == 2
    assert "give a BEIR folder (BEIR_DIR), or MTEB tasks with --mteb TASK" in capsys.readouterr().err
    assert main(["eval", str(model_dir), "--mteb", str(beir_dir), "--json", str(tmp_path / "r.json")]) == 2
    assert "--json write the BEIR_DIR report" in capsys.readouterr().err
