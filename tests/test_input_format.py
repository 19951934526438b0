"""A model reads the input format it knows: plain for a model not trained here, the recorded one
for a model trained here. Mining, evaluation and encoding all follow it (README, issue 12/13)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from gecko_distill import GeneratedQuery, Passage, RetrieveConfig, retrieve
from gecko_distill.embedder.encoding import (
    PROVENANCE_FILE,
    encode_documents,
    encode_queries,
    load_model,
    model_input_format,
)
from gecko_distill.embedder.evaluate import EvalConfig, evaluate
from gecko_distill.embedder.formatting import format_document, format_query

PASSAGES = [
    Passage(id="ls", title="ls", text="ls lists the files in a directory, sorted by name."),
    Passage(id="cp", title="cp", text="cp copies files and directories to a destination."),
    Passage(id="rm", title="rm", text="rm removes files; it does not remove directories by default."),
    Passage(id="mkdir", title="mkdir", text="mkdir creates the directories named on the command line."),
]
QUERIES = [GeneratedQuery(id=f"{p.id}#0", passage_id=p.id, task="Find the command", query=f"how to use {p.id}") for p in PASSAGES]


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory, embedder) -> Path:
    """The base MiniLM saved as if trained here in the e5 format (only its gecko_distill.json differs)."""
    folder = tmp_path_factory.mktemp("model")
    embedder.save(str(folder))
    (folder / PROVENANCE_FILE).write_text(json.dumps({"query_format": "e5"}))
    return folder


def test_the_format_comes_from_the_model(trained_like: Path, embedder) -> None:
    assert model_input_format(None) == "plain"
    assert model_input_format(embedder) == "plain"
    assert model_input_format(trained_like) == "e5"
    assert model_input_format(load_model(trained_like)) == "e5"  # a loaded model knows its folder


def test_untrained_miner_reads_plain_and_trained_one_its_format(trained_like: Path, embedder) -> None:
    base = retrieve(QUERIES, PASSAGES, embedder, RetrieveConfig(top_n=3), embedding_cache=False)
    assert base.stats["input_format"] == "plain"
    trained = retrieve(QUERIES, PASSAGES, str(trained_like), RetrieveConfig(top_n=3), embedding_cache=False)
    assert trained.stats["input_format"] == "e5"
    forced = retrieve(QUERIES, PASSAGES, embedder, RetrieveConfig(top_n=3, input_format="gecko"), embedding_cache=False)
    assert forced.stats["input_format"] == "gecko"
    # the plain vectors are the plain texts' vectors: the seed is ranked first for these easy queries
    assert all(r.candidates[0].passage_id == r.query.passage_id for r in base.records)


def test_encoding_reads_the_model_format(trained_like: Path, embedder, caplog) -> None:
    model = load_model(trained_like)
    expected = model.encode([format_query("Find the command", "list files", "e5")], normalize_embeddings=True)
    got = encode_queries(trained_like, [("Find the command", "list files")])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    doc = {"title": "ls", "text": "list files"}
    np.testing.assert_allclose(
        encode_documents(trained_like, [doc]),
        model.encode([format_document("list files", "ls", "e5")], normalize_embeddings=True),
        atol=1e-5,
    )
    plain = encode_queries(embedder, [("Find the command", "list files")])
    np.testing.assert_allclose(plain, embedder.encode(["list files"], normalize_embeddings=True), atol=1e-5)
    with caplog.at_level(logging.WARNING):
        encode_queries(trained_like, [("Find the command", "list files")], query_format="gecko")
    assert "trained in the 'e5' input format, but 'gecko' was asked for" in caplog.text


def test_eval_reads_the_model_format(trained_like: Path, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n" for p in PASSAGES)
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "copy a file"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tcp\t1\n")
    assert evaluate(trained_like, beir, dims=[384]).config.input_format == "e5"
    assert evaluate(None, beir, dims=[384]).config.input_format == "plain"
    assert evaluate(None, beir, dims=[384], config=EvalConfig(input_format="gecko")).config.input_format == "gecko"
