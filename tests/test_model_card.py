"""A model trained here describes itself (issue 14, part 1): its prompts reproduce this library's
input format in plain sentence-transformers, and its card names its base model, language, licence,
training data and evaluation results."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from test_train import MANIFEST, _distinct_topics, _examples, _write_beir, _write_fret

from gecko_distill.embedder.encoding import PROVENANCE_FILE, encode_documents, encode_queries
from gecko_distill.embedder.evaluate import EvalConfig, evaluate
from gecko_distill.embedder.formatting import DEFAULT_TASK, query_prompt
from gecko_distill.embedder.model_card import DEFAULT_EMBEDDER_ID, base_model_id, record_evaluation
from gecko_distill.embedder.selfcheck import SelfCheckConfig
from gecko_distill.embedder.train import TrainConfig, train
from gecko_distill.errors import InputError

TINY = TrainConfig(
    max_steps=1, batch_size=4, max_seq_length=64, logging_steps=1, self_check=SelfCheckConfig(holdout_fraction=0.0)
)
QUERIES = ["how do I define a class", "what does the assert statement do"]
DOCUMENTS = ["The assert statement inserts debugging assertions into a program.", "A class definition defines a class object."]
OTHER_TASK = "Given a Python keyword, retrieve its reference section"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def beir(pydoc_passages, tmp_path_factory) -> Path:
    return _write_beir(tmp_path_factory.mktemp("beir") / "pydoc", _distinct_topics(pydoc_passages, 10, skip=200))


@pytest.fixture(scope="module", params=["plain", "gecko"])
def trained(request, pydoc_passages, tmp_path_factory) -> tuple[Path, str]:
    """A model trained for one step in the plain (default) and the gecko input format, from an FRet
    folder with a manifest. (The e5 prompts come from the same ``query_prompt``/``document_prompt``,
    whose doctests cover that format.)"""
    tmp = tmp_path_factory.mktemp(f"card-{request.param}")
    fret_dir = _write_fret(tmp / "fret", _examples(_distinct_topics(pydoc_passages, 12)), MANIFEST)
    config = TINY.model_copy(update={"query_format": request.param})
    return train(fret_dir, output_dir=tmp / "model", config=config), request.param


def test_saved_prompts_give_the_library_vectors_in_plain_sentence_transformers(trained) -> None:
    from sentence_transformers import SentenceTransformer

    path, fmt = trained
    model = SentenceTransformer(str(path), device="cpu")  # no gecko_distill involved in loading
    saved = json.loads((path / "config_sentence_transformers.json").read_text())
    expected_prompts = {
        "plain": {"query": "", "document": ""},
        "gecko": {"query": f"task: {DEFAULT_TASK} | query: ", "document": "title: none | text: "},
    }[fmt]
    assert saved["prompts"] == expected_prompts and saved["default_prompt_name"] is None

    ours_q = encode_queries(path, QUERIES, task=DEFAULT_TASK)
    ours_d = encode_documents(path, DOCUMENTS)
    assert np.allclose(model.encode_query(QUERIES, normalize_embeddings=True), ours_q, atol=1e-5)
    assert np.allclose(model.encode_document(DOCUMENTS, normalize_embeddings=True), ours_d, atol=1e-5)
    # a query of another task: its own prompt
    pairs = [(OTHER_TASK, q) for q in QUERIES]
    st_other = model.encode_query(QUERIES, prompt=query_prompt(OTHER_TASK, fmt), normalize_embeddings=True)
    assert np.allclose(st_other, encode_queries(path, pairs), atol=1e-5)
    if fmt != "plain":  # the prompt matters: without it the vectors differ
        assert not np.allclose(model.encode(QUERIES, normalize_embeddings=True), ours_q, atol=1e-3)


def test_the_card_names_base_model_language_licence_and_data(trained) -> None:
    path, fmt = trained
    readme = (path / "README.md").read_text()
    metadata = metadata_load(path / "README.md")
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["language"] == ["en"] and metadata["license"] == "apache-2.0"  # the base model's card
    assert {"gecko_distill", "fret", "matryoshka"} <= set(metadata["tags"])
    assert "FRet (teacher hand-written, config abc123def456, 12 examples)" in readme
    assert "## gecko_distill" in readme and f"in the `{fmt}` input format" in readme
    assert '"config_hash"' not in readme and '```json\n{\n  "' not in readme  # no provenance JSON pasted in
    provenance = json.loads((path / PROVENANCE_FILE).read_text())
    assert provenance["base_model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert provenance["prompts"]["query"] == query_prompt(DEFAULT_TASK, fmt)


def _model_index(path: Path) -> dict[tuple[str, str], float]:
    """(dataset type, metric type) -> value, of the card's model-index."""
    card = ModelCard.load(path / "README.md")
    return {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results or []}


def test_evaluation_results_enter_the_card_at_every_dimension(trained, beir: Path, tmp_path: Path) -> None:
    import shutil

    source, fmt = trained
    path = Path(shutil.copytree(source, tmp_path / "model"))
    report = evaluate(path, beir, dims=[384, 128, 64])
    assert record_evaluation(path, report) == path / "README.md"
    index = _model_index(path)
    for row in report.scores:
        assert index[(f"pydoc_dim_{row.dim}", "cosine_ndcg@10")] == round(row.ndcg_at_10, 4)
        assert index[(f"pydoc_dim_{row.dim}", "cosine_recall@100")] == round(row.recall_at_100, 4)
    text = (path / "README.md").read_text()
    assert "## Retrieval quality (gecko_distill eval)" in text and f"| pydoc | test | {fmt} | 10 | 64 |" in text
    assert "## gecko_distill" in text  # the card's other sections stay

    # the same data again replaces the results; other data and another input format are added
    again = evaluate(path, beir, dims=[384])
    record_evaluation(path, again)
    other = evaluate(path, beir, dims=[64], config=EvalConfig(input_format="gecko" if fmt != "gecko" else "plain"))
    record_evaluation(path, other.model_copy(update={"dataset": str(tmp_path / "nfcorpus")}))
    index = _model_index(path)
    ours = sorted({dataset for dataset, _ in index})
    other_fmt = other.config.input_format
    assert ours == sorted(["pydoc_dim_384", f"nfcorpus_{other_fmt}-input_dim_64"])
    assert index[("pydoc_dim_384", "cosine_ndcg@10")] == round(again.at(384).ndcg_at_10, 4)
    evaluations = json.loads((path / PROVENANCE_FILE).read_text())["evaluations"]
    assert [(Path(e["dataset"]).name, [s["dim"] for s in e["scores"]]) for e in evaluations] == [
        ("pydoc", [384]),
        ("nfcorpus", [64]),
    ]
    assert (path / "README.md").read_text().count("## Retrieval quality (gecko_distill eval)") == 1


def test_a_model_not_trained_here_is_left_alone(embedder, beir: Path, tmp_path: Path) -> None:
    embedder.save(str(tmp_path / "base"))
    before = (tmp_path / "base" / "README.md").read_text()
    report = evaluate(tmp_path / "base", beir, dims=[64])
    assert record_evaluation(tmp_path / "base", report) is None
    assert (tmp_path / "base" / "README.md").read_text() == before
    assert record_evaluation("sentence-transformers/all-MiniLM-L6-v2", report) is None


def test_a_damaged_provenance_file_is_named(trained, beir: Path, tmp_path: Path) -> None:
    import shutil

    path = Path(shutil.copytree(trained[0], tmp_path / "model"))
    report = evaluate(path, beir, dims=[64])
    (path / PROVENANCE_FILE).write_text("{not json")
    with pytest.raises(InputError, match=r"gecko_distill\.json: not valid JSON"):
        record_evaluation(path, report)


def test_another_format_than_the_trained_one_is_a_warning(trained, caplog) -> None:
    path, fmt = trained
    other = "gecko" if fmt != "gecko" else "plain"
    with caplog.at_level(logging.WARNING):
        encode_queries(path, QUERIES, task=DEFAULT_TASK)
    assert "input format" not in caplog.text  # its own format: silent
    with caplog.at_level(logging.WARNING):
        encode_queries(path, QUERIES, task=DEFAULT_TASK, query_format=other)
    assert f"the model was trained in the {fmt!r} input format, but {other!r} was asked for" in caplog.text


def test_the_base_model_hub_id_is_found_where_it_can_be(trained, embedder, tmp_path: Path) -> None:
    snapshot = tmp_path / "hub" / "models--BAAI--bge-small-en-v1.5" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    assert base_model_id(snapshot) == "BAAI/bge-small-en-v1.5"  # a folder in the hub cache
    assert base_model_id(embedder) == DEFAULT_EMBEDDER_ID  # the offline default, loaded
    assert base_model_id(trained[0]) == DEFAULT_EMBEDDER_ID  # a model trained here: its root
    assert base_model_id(tmp_path) is None and base_model_id("org/name") == "org/name"


def test_the_eval_command_adds_the_results_to_the_card(trained, beir: Path, tmp_path: Path, capsys, caplog) -> None:
    import shutil

    from gecko_distill.cli import main

    path = Path(shutil.copytree(trained[0], tmp_path / "model"))
    assert main(["eval", str(path), str(beir), "--dims", "384", "64"]) == 0
    assert f"added the results to the model card {path / 'README.md'}" in capsys.readouterr().out
    index = _model_index(path)
    assert {dataset for dataset, _ in index} == {"pydoc_dim_384", "pydoc_dim_64"}
    evaluations = json.loads((path / PROVENANCE_FILE).read_text())["evaluations"]
    assert [[s["dim"] for s in e["scores"]] for e in evaluations] == [[384, 64]]

    (path / "README.md").unlink()
    (path / "README.md").mkdir()  # a card that cannot be written: the scores still print
    assert main(["eval", str(path), str(beir), "--dims", "64"]) == 0
    assert "| 64 |" in capsys.readouterr().out
    assert "the results were not added to the model card" in caplog.text and "README.md: cannot write it" in caplog.text


def test_eval_of_the_default_model_writes_no_card(beir: Path, capsys) -> None:
    from gecko_distill.cli import main

    assert main(["eval", "default", str(beir), "--dims", "64"]) == 0
    assert "model card" not in capsys.readouterr().out
