"""train(): a few real optimiser steps of MiniLM on a tiny hand-made FRet set from pydoc text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gecko_distill.embedder import formatting
from gecko_distill.embedder.encoding import encode_documents, encode_queries, format_documents, format_queries, load_model
from gecko_distill.embedder.evaluate import beir_evaluator, evaluate
from gecko_distill.embedder.train import (
    PROVENANCE_FILE,
    TrainConfig,
    build_loss,
    fret_dataset,
    labelled_dataset,
    mix_datasets,
    resolve_query_format,
    train,
)
from gecko_distill.errors import InputError
from gecko_distill.records import FRetExample, Passage

TASK = "Given the opening words of a Python reference section, retrieve the section"
MANIFEST = {"teacher": "hand-written", "config_hash": "abc123def4567890ffff", "counts": {"examples": 12}}
TINY = TrainConfig(max_steps=3, batch_size=4, max_seq_length=64, logging_steps=1, eval_steps=2, query_format="gecko")


def _query(passage: Passage) -> str:
    return " ".join(passage.text.split()[:8])


def _examples(passages: list[Passage]) -> list[FRetExample]:
    """One example per passage: its first words as the query, another topic's passage as negative."""
    examples = []
    for i, positive in enumerate(passages):
        negative = next(p for p in passages[i + 1 :] + passages[:i] if p.title != positive.title)
        examples.append(
            FRetExample(
                id=f"{positive.id}#0",
                task=TASK,
                query=_query(positive),
                positive=positive,
                negative=negative,
                seed_passage_id=positive.id,
                positive_is_seed=True,
                positive_ranks={"ql": 1, "rc": 1, "fused": 1},
                negative_ranks={"ql": 4, "rc": 4, "fused": 4},
            )
        )
    return examples


def _distinct_topics(passages: list[Passage], n: int, skip: int = 0) -> list[Passage]:
    seen, picked = set(), []
    for p in passages[skip:]:
        if p.title not in seen:
            seen.add(p.title)
            picked.append(p)
        if len(picked) == n:
            break
    return picked


def _write_fret(folder: Path, examples: list[FRetExample], manifest: dict | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "fret.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in examples))
    if manifest is not None:
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


#: Training options of the smallest real CLI run: one step of batch 2 on short texts, two dimensions.
ONE_TINY_STEP = ["--max-steps", "1", "--batch-size", "2", "--max-seq-length", "32", "--dims", "384", "64"]


def _write_beir(folder: Path, passages: list[Passage]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": p.id, "title": p.title, "text": p.text}) + "\n" for p in passages)
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q-{p.id}", "text": _query(p)}) + "\n" for p in passages))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q-{p.id}\t{p.id}\t1\n" for p in passages)
    )
    return folder


@pytest.fixture(scope="module")
def fret_passages(pydoc_passages: list[Passage]) -> list[Passage]:
    return _distinct_topics(pydoc_passages, 12)


@pytest.fixture(scope="module")
def tiny_beir(pydoc_passages: list[Passage], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_beir(tmp_path_factory.mktemp("beir") / "pydoc", _distinct_topics(pydoc_passages, 10, skip=200))


@pytest.fixture(scope="module")
def trained(fret_passages, pydoc_passages, tiny_beir, tmp_path_factory):
    """Train once (3 steps, FRet folder + a pairs set at ratio 1:0.5, validation every 2 steps),
    recording every call of the formatting functions."""
    tmp = tmp_path_factory.mktemp("train")
    examples = _examples(fret_passages)
    fret_dir = _write_fret(tmp / "fret", examples, MANIFEST)
    pairs = [
        {"task": "Find the reference section", "anchor": _query(p), "positive": {"title": p.title, "text": p.text}}
        for p in _distinct_topics(pydoc_passages, 8, skip=100)
    ]
    calls: list[tuple] = []
    real_query, real_document = formatting.format_query, formatting.format_document
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(formatting, "format_query", lambda *args: calls.append(("q", *args)) or real_query(*args))
        mp.setattr(formatting, "format_document", lambda *args: calls.append(("d", *args)) or real_document(*args))
        path = train(
            fret_dir,
            output_dir=tmp / "model",
            config=TINY.model_copy(update={"mix_ratios": {"fret": 1.0, "pairs": 0.5}}),
            extra_datasets={"pairs": pairs},
            evaluator=beir_evaluator(tiny_beir, name="pydoc"),
        )
    return {"path": path, "calls": calls, "examples": examples, "pairs": pairs}


def test_saved_model_reloads_and_records_the_fret_manifest(trained) -> None:
    from sentence_transformers import SentenceTransformer

    path: Path = trained["path"]
    model = SentenceTransformer(str(path), device="cpu")
    assert model.encode(["x"]).shape == (1, 384)
    readme = (path / "README.md").read_text()
    assert "FRet (teacher hand-written, config abc123def456, 12 examples)" in readme  # ST's own card: dataset name
    assert '"config_hash"' not in readme  # the manifest is in gecko_distill.json, not pasted into the card
    assert "pydoc_cosine_ndcg@10" in readme  # validation ran during training
    provenance = json.loads((path / PROVENANCE_FILE).read_text())
    assert provenance["fret_manifest"] == MANIFEST
    assert provenance["matryoshka_dims"] == [384, 256, 128, 64]
    assert provenance["examples_per_epoch"] == {"fret": 12, "pairs": 6}
    assert provenance["query_format"] == "gecko" and provenance["train_config"]["query_format"] == "gecko"
    assert provenance["query_template"] == formatting.format_query("{task}", "{query}")
    assert provenance["document_template"] == formatting.format_document("{text}", "{title}")


def test_training_changed_the_weights(trained, embedder) -> None:
    text = ["The assert statement inserts debugging assertions into a program."]
    before = embedder.encode(text)
    after = load_model(trained["path"]).encode(text)
    assert not np.allclose(before, after, atol=1e-4)


def test_truncated_dims_load_and_evaluate(trained, tiny_beir: Path) -> None:
    from sentence_transformers import SentenceTransformer

    small = SentenceTransformer(str(trained["path"]), device="cpu", truncate_dim=64)
    assert small.encode(["x"]).shape == (1, 64)
    report = evaluate(trained["path"], tiny_beir, dims=[384, 128, 64])
    assert [row.dim for row in report.scores] == [384, 128, 64]
    assert report.config.input_format == "gecko" and report.num_queries == 10
    assert all(0 < row.ndcg_at_10 <= 1 and row.recall_at_100 == 1.0 for row in report.scores)


def test_training_input_goes_through_formatting(trained) -> None:
    calls = set(trained["calls"])
    for e in trained["examples"]:  # the manifest names no query_format: Gecko's
        assert ("q", e.task, e.query, "gecko") in calls
        assert ("d", e.positive.text, e.positive.title, "gecko") in calls
        assert ("d", e.negative.text, e.negative.title, "gecko") in calls
    for row in trained["pairs"]:
        assert ("q", row["task"], row["anchor"], "gecko") in calls
        assert ("d", row["positive"]["text"], row["positive"]["title"], "gecko") in calls


@pytest.mark.parametrize("query_format", ["gecko", "e5"])
def test_encoding_goes_through_formatting(embedder, monkeypatch: pytest.MonkeyPatch, query_format: str) -> None:
    monkeypatch.setattr(formatting, "format_query", lambda task, query, fmt="gecko": f"{query} ({task}, {fmt})")
    monkeypatch.setattr(formatting, "format_document", lambda text, title="", fmt="gecko": f"{title}: {text} ({fmt})")
    q = encode_queries(embedder, ["list files"], task="shell", query_format=query_format)
    d = encode_documents(embedder, [Passage(id="ls", title="ls", text="list directory contents")], query_format=query_format)
    assert np.allclose(q, embedder.encode([f"list files (shell, {query_format})"], normalize_embeddings=True), atol=1e-5)
    assert np.allclose(
        d, embedder.encode([f"ls: list directory contents ({query_format})"], normalize_embeddings=True), atol=1e-5
    )


@pytest.mark.parametrize("query_format", ["gecko", "e5"])
def test_training_and_encoding_write_the_same_text(fret_passages, query_format: str) -> None:
    """What train() feeds the model is what encode_queries / encode_documents feed it."""
    examples = _examples(fret_passages[:3])
    rows = fret_dataset(examples, query_format).to_list()
    assert [r["anchor"] for r in rows] == format_queries([(e.task, e.query) for e in examples], query_format=query_format)
    assert [r["positive"] for r in rows] == format_documents([e.positive for e in examples], query_format)
    assert rows[0] == {
        "anchor": formatting.format_query(TASK, examples[0].query, query_format),
        "positive": formatting.format_document(examples[0].positive.text, examples[0].positive.title, query_format),
        "negative": formatting.format_document(examples[0].negative.text, examples[0].negative.title, query_format),
    }
    pairs = labelled_dataset("nq", [{"task": TASK, "anchor": e.query, "positive": e.positive} for e in examples], query_format)
    assert pairs.to_list() == [{"anchor": r["anchor"], "positive": r["positive"]} for r in rows]


def test_e5_format_text() -> None:
    positive = Passage(id="ls", title="ls", text="List directory contents.")
    rows = labelled_dataset("nq", [{"task": "Find the command", "anchor": "list files", "positive": positive}], "e5")
    assert rows.to_list() == [
        {"anchor": "Instruct: Find the command\nQuery: list files", "positive": "ls List directory contents."}
    ]


def test_query_format_comes_from_the_config_or_the_manifest() -> None:
    assert TrainConfig().query_format is None
    assert resolve_query_format(TrainConfig(), {"query_format": "e5"}).query_format == "e5"
    assert resolve_query_format(TrainConfig(query_format="gecko"), {"query_format": "e5"}).query_format == "gecko"
    assert resolve_query_format(TrainConfig(), MANIFEST).query_format == "plain"  # the base model's own format
    assert resolve_query_format(TrainConfig(), MANIFEST, "gecko").query_format == "gecko"
    with pytest.raises(InputError, match="the data manifest names query_format 'raw'"):
        resolve_query_format(TrainConfig(), {"query_format": "raw"})
    with pytest.raises(ValueError, match="query_format"):
        TrainConfig(query_format="raw")


def test_loss_is_matryoshka_mnrl_with_same_tower_negatives(embedder) -> None:
    loss = build_loss(embedder, TrainConfig(scale=30.0), (384, 128))
    assert type(loss).__name__ == "MatryoshkaLoss" and list(loss.matryoshka_dims) == [384, 128]
    assert type(loss.loss).__name__ == "MultipleNegativesRankingLoss"
    assert loss.loss.directions == ("query_to_doc", "query_to_query") and loss.loss.partition_mode == "joint"
    assert loss.loss.scale == 30.0
    assert build_loss(embedder, TrainConfig(loss_directions="infonce"), (384,)).loss.directions == ("query_to_doc",)


def test_mix_ratios_resample_extra_sets() -> None:
    from datasets import Dataset

    sets = {"fret": Dataset.from_dict({"anchor": [f"f{i}" for i in range(10)]}), "nq": Dataset.from_dict({"anchor": list("abc")})}
    mixed = mix_datasets(sets, {"fret": 2.0, "nq": 1.0}, seed=0)
    assert {k: len(v) for k, v in mixed.items()} == {"fret": 10, "nq": 5}
    assert sorted(mixed["fret"]["anchor"]) == sorted(sets["fret"]["anchor"])  # FRet used once
    assert set(mixed["nq"]["anchor"]) == {"a", "b", "c"}  # the small set is cycled through, not partly used
    assert mix_datasets(sets, {}) == sets
    with pytest.raises(InputError, match=r"mix_ratios names \['fret'\] but the training sets are \['fret', 'nq'\]"):
        mix_datasets(sets, {"fret": 1.0})


def test_labelled_dataset_checks_columns() -> None:
    with pytest.raises(InputError, match=r"extra dataset 'nq', row 1: missing column\(s\) \['task'\]"):
        labelled_dataset("nq", [{"task": "t", "anchor": "a", "positive": "p"}, {"anchor": "b", "positive": "q"}])
    with pytest.raises(InputError, match="either every row has a 'negative' or none does"):
        labelled_dataset(
            "nq", [{"task": "t", "anchor": "a", "positive": "p", "negative": "n"}, {"task": "t", "anchor": "b", "positive": "q"}]
        )


def test_missing_fret_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"absent/fret\.jsonl: FRet file not found"):
        train(tmp_path / "absent", output_dir=tmp_path / "model")


def test_invalid_fret_line_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "fret"
    folder.mkdir()
    (folder / "fret.jsonl").write_text('{"id": "x", "task": "t"}\n')
    with pytest.raises(InputError, match=r"fret\.jsonl:1: not a valid FRetExample"):
        train(folder, output_dir=tmp_path / "model")


def test_matryoshka_dim_larger_than_model(fret_passages, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"matryoshka_dims: 512 is larger than the model's embedding dimension 384"):
        train(_examples(fret_passages[:4]), output_dir=tmp_path / "m", config=TrainConfig(matryoshka_dims=(512, 256)))


def test_batch_larger_than_data(fret_passages, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"training set 'fret' has 4 examples, fewer than one batch \(batch_size=8\)"):
        train(_examples(fret_passages[:4]), output_dir=tmp_path / "m", config=TrainConfig(batch_size=8))


def test_refuses_a_non_empty_output_folder(fret_passages, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="output folder is not empty; pass overwrite=True"):
        train(_examples(fret_passages[:4]), output_dir=tmp_path / "m")
    assert (tmp_path / "m" / "keep.txt").exists()


def test_reserved_extra_dataset_name(fret_passages, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'fret' is reserved"):
        train(_examples(fret_passages[:4]), output_dir=tmp_path / "m", extra_datasets={"fret": []})


def test_train_config_is_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        TrainConfig(epoch=1)
    with pytest.raises(ValueError, match="loss_directions"):
        TrainConfig(loss_directions="symmetric")
    with pytest.raises(ValueError, match="mix ratios must be positive"):
        TrainConfig(mix_ratios={"fret": 0})
    with pytest.raises(ValueError, match="frozen"):
        TrainConfig().epochs = 2


def test_cli_train(fret_passages, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gecko_distill.cli import main

    fret_dir = _write_fret(tmp_path / "fret", _examples(fret_passages[:8]), manifest=None)
    args = [
        "train",
        str(fret_dir),
        "--out",
        str(tmp_path / "m"),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--max-seq-length",
        "32",
        "--dims",
        "384",
        "96",
    ]
    assert main(args) == 0
    provenance = json.loads((tmp_path / "m" / PROVENANCE_FILE).read_text())
    assert provenance["matryoshka_dims"] == [384, 96] and provenance["train_config"]["max_steps"] == 1
    assert provenance["fret_manifest"] == {}  # no manifest.json: trained anyway, with a warning
    assert main(args) == 2  # the folder is now in use
    assert "output folder is not empty" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_no_batch_without_repeated_texts_is_an_error(fret_passages, tmp_path: Path) -> None:
    shared_negative = fret_passages[-1]
    examples = [e.model_copy(update={"negative": shared_negative}) for e in _examples(fret_passages[:4])]
    with pytest.raises(InputError, match="no training step ran: the batch sampler found no batch of 2 examples"):
        train(examples, output_dir=tmp_path / "m", config=TrainConfig(batch_size=2, max_seq_length=32))
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_labelled_dataset_accepts_a_datasets_dataset() -> None:
    from datasets import Dataset

    rows = Dataset.from_list(
        [
            {"task": "t", "anchor": "a", "positive": {"title": "T", "text": "p"}, "negative": {"title": "", "text": "n"}},
        ]
    )
    assert labelled_dataset("nq", rows).to_list() == [
        {
            "anchor": formatting.format_query("t", "a"),
            "positive": formatting.format_document("p", "T"),
            "negative": formatting.format_document("n"),
        },
    ]
