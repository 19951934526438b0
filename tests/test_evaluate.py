"""evaluate(): hand-computed metrics on a tiny BEIR folder, input formats, reports, plots, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from gecko_distill.embedder.evaluate import (
    DimScores,
    EvalConfig,
    RetrievalReport,
    beir_evaluator,
    evaluate,
    load_beir,
    plot_reports,
)
from gecko_distill.embedder.formatting import format_document, format_query
from gecko_distill.errors import InputError

MANPAGES = Path("/work/shared/data/manpages")

# Hand-made 4-d vectors. At dim 4 and dim 2 (truncated, then re-normalised) the rankings are:
#   q1 (relevant d3):      dim 4: d3 first             dim 2: d4, d3, ... -> rank 2
#   q2 (relevant d1, d2):  dim 4: d1, d4, d2 -> 1 and 3   dim 2: d1, d3, d4, d2 -> 1 and 4
#   q3 (relevant d5):      dim 4: 11 fillers first -> 12   dim 2: d1, d3, d4, then ties at 0 in id
#                          order d2, d5 -> rank 5
VECTORS = {
    "d1": [1, 0, 0, 0],
    "d2": [0, 1, 0, 0],
    "d3": [0.05, 0.05, 1, 0],
    "d4": [0.6, 0.8, 0, 0],
    "d5": [0, 0, 0.6, 0.8],
    **{f"f{i:02d}": [0, 0, 0, 1] for i in range(11)},
    "q1": [0.1, 0.2, 0.9, 0],
    "q2": [0.7, 0.1, 0, 0],
    "q3": [0.01, 0, 0, 1],
    "q4": [1, 1, 1, 1],  # in queries.jsonl but not in qrels: not evaluated
}
QRELS = [("q1", "d3", 1), ("q2", "d1", 1), ("q2", "d2", 1), ("q3", "d5", 1), ("q3", "d1", 0)]


def _ndcg(ranks: list[int], relevant: int) -> float:
    dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= 10)
    return dcg / sum(1 / math.log2(r + 1) for r in range(1, relevant + 1))


EXPECTED = {
    4: DimScores(
        dim=4,
        ndcg_at_10=(1 + _ndcg([1, 3], 2) + 0) / 3,
        mrr_at_10=(1 + 1 + 0) / 3,
        recall_at_10=(1 + 1 + 0) / 3,
        recall_at_100=1.0,
    ),
    2: DimScores(
        dim=2,
        ndcg_at_10=(1 / math.log2(3) + _ndcg([1, 4], 2) + 1 / math.log2(6)) / 3,
        mrr_at_10=(1 / 2 + 1 + 1 / 5) / 3,
        recall_at_10=1.0,
        recall_at_100=1.0,
    ),
}


class TokenEncoder:
    """A stand-in SentenceTransformer: a text's vector is that of the id token it contains."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts, **kwargs):
        self.seen.extend(texts)
        ids = [re.search(r"\b([dqf]\d+)\b", t).group(1) for t in texts]
        return np.array([VECTORS[i] for i in ids], dtype=np.float32)


def write_beir(folder: Path, corpus: dict, queries: dict, qrels: list, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for doc_id, (title, text) in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    corpus = {k: (f"title {k}", f"text of document {k}") for k in VECTORS if k[0] in "df"}
    queries = {k: f"question {k}" for k in VECTORS if k[0] == "q"}
    return write_beir(tmp_path / "toy", corpus, queries, QRELS)


@pytest.mark.parametrize("input_format", ["plain", "gecko", "e5"])
def test_metrics_match_hand_computed_values(beir: Path, input_format: str) -> None:
    report = evaluate(TokenEncoder(), beir, dims=[2, 4], config=EvalConfig(input_format=input_format))
    assert [row.dim for row in report.scores] == [4, 2]
    for dim, expected in EXPECTED.items():
        got = report.at(dim)
        for field in ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100"):
            assert getattr(got, field) == pytest.approx(getattr(expected, field), abs=1e-9), (dim, field)
    assert (report.num_queries, report.num_corpus) == (3, 16)


def test_input_formats_go_through_formatting(beir: Path) -> None:
    gecko, e5, plain = TokenEncoder(), TokenEncoder(), TokenEncoder()
    evaluate(gecko, beir, dims=[4], config=EvalConfig(input_format="gecko", task="find the doc"))
    evaluate(e5, beir, dims=[4], config=EvalConfig(input_format="e5", task="find the doc"))
    evaluate(plain, beir, dims=[4], config=EvalConfig(input_format="plain"))
    assert format_query("find the doc", "question q1") in gecko.seen
    assert format_document("text of document d1", "title d1") in gecko.seen
    assert format_query("find the doc", "question q1", query_format="e5") in e5.seen
    assert "Instruct: find the doc\nQuery: question q1" in e5.seen
    assert format_document("text of document d1", "title d1", document_format="e5") in e5.seen
    assert "question q1" in plain.seen and "title d1 text of document d1" in plain.seen
    assert "question q4" not in plain.seen  # not in qrels


def test_formatting_module_is_the_one_used(beir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gecko_distill.embedder.formatting as formatting

    monkeypatch.setattr(formatting, "format_query", lambda task, query, fmt: f"<Q {query} {fmt}>")
    monkeypatch.setattr(formatting, "format_document", lambda text, title, fmt: f"<D {text} {fmt}>")
    encoder = TokenEncoder()
    report = evaluate(encoder, beir, dims=[4])  # a model not trained here reads plain input by default
    assert "<Q question q2 plain>" in encoder.seen and "<D text of document d5 plain>" in encoder.seen
    assert report.config.input_format == "plain"
    evaluate(encoder, beir, dims=[4], config=EvalConfig(input_format="gecko"))
    assert "<Q question q2 gecko>" in encoder.seen and "<D text of document d5 gecko>" in encoder.seen
    evaluate(encoder, beir, dims=[4], config=EvalConfig(input_format="e5"))
    assert "<Q question q2 e5>" in encoder.seen and "<D text of document d5 e5>" in encoder.seen


def test_report_round_trips_and_plots(beir: Path, tmp_path: Path) -> None:
    report = evaluate(TokenEncoder(), beir, dims=[4, 2], label="toy-encoder")
    path = report.save(tmp_path / "out" / "report.json")
    loaded = RetrievalReport.load(path)
    assert loaded == report and loaded.model == "toy-encoder"
    other = report.model_copy(
        update={"model": "other", "scores": [s.model_copy(update={"ndcg_at_10": 0.5}) for s in report.scores]}
    )
    png = plot_reports([report, other], tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(InputError, match=r"unknown metrics \['map'\]"):
        plot_reports([report], tmp_path / "x.png", metrics=["map"])


def test_beir_evaluator_for_validation_during_training(beir: Path) -> None:
    evaluator = beir_evaluator(beir, name="toy")
    assert evaluator.primary_metric == "toy_cosine_ndcg@10"
    assert len(evaluator.queries) == 3 and len(evaluator.corpus) == 16


def test_missing_qrels_file(beir: Path) -> None:
    (beir / "qrels" / "test.tsv").unlink()
    with pytest.raises(InputError, match=r"qrels/test\.tsv: qrels file not found"):
        evaluate(TokenEncoder(), beir, dims=[4])


def test_qrels_query_missing_from_queries(beir: Path) -> None:
    with (beir / "qrels" / "test.tsv").open("a") as f:
        f.write("q9\td1\t1\n")
    with pytest.raises(InputError, match=r"test\.tsv:7: query id 'q9' is not in .*queries\.jsonl"):
        load_beir(beir)


def test_qrels_document_missing_from_corpus(beir: Path) -> None:
    with (beir / "qrels" / "test.tsv").open("a") as f:
        f.write("q1\tnope\t1\n")
    with pytest.raises(InputError, match=r"test\.tsv:7: corpus id 'nope' is not in .*corpus\.jsonl"):
        load_beir(beir)


def test_bad_corpus_line_is_named(beir: Path) -> None:
    with (beir / "corpus.jsonl").open("a") as f:
        f.write('{"_id": "d9", "title": "t"}\n')
    with pytest.raises(InputError, match=r"corpus\.jsonl:17: id 'd9' needs a string 'text'"):
        load_beir(beir)


def test_dim_larger_than_model(beir: Path) -> None:
    with pytest.raises(InputError, match=r"dims: 8 is larger than the model's embedding dimension 4"):
        evaluate(TokenEncoder(), beir, dims=[4, 8])


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        load_beir(tmp_path / "absent")


def test_eval_config_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="input_format"):
        EvalConfig(input_format="raw")
    with pytest.raises(ValueError, match="extra"):
        EvalConfig(top_k=5)


@pytest.mark.slow
def test_plain_format_reproduces_manpages_baseline() -> None:
    """The benchmark README's all-MiniLM-L6-v2 row (title + " " + text, exact search)."""
    baseline = {row["dims"]: row for row in json.loads((MANPAGES / "baselines.json").read_text())["rows"]}
    report = evaluate(None, MANPAGES, dims=[384, 128, 64], config=EvalConfig(input_format="plain"))
    for dim in (384, 128, 64):
        row = report.at(dim)
        assert row.ndcg_at_10 == pytest.approx(baseline[dim]["nDCG@10"], abs=1e-6)
        assert row.mrr_at_10 == pytest.approx(baseline[dim]["MRR@10"], abs=1e-6)
        assert row.recall_at_10 == pytest.approx(baseline[dim]["R@10"], abs=1e-6)
        assert row.recall_at_100 == pytest.approx(baseline[dim]["R@100"], abs=1e-6)


def test_cli_eval_writes_report_and_plot(beir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gecko_distill.cli import main

    out, png = tmp_path / "r.json", tmp_path / "r.png"
    assert (
        main(["eval", "default", str(beir), "--dims", "384", "64", "--format", "plain", "--out", str(out), "--plot", str(png)])
        == 0
    )
    report = RetrievalReport.load(out)
    assert [row.dim for row in report.scores] == [384, 64] and report.config.input_format == "plain"
    assert "| plain | 64 |" in capsys.readouterr().out
    assert main(["plot", str(out), str(out), "--out", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").stat().st_size > 10_000


def test_cli_eval_errors_are_one_line(beir: Path, capsys: pytest.CaptureFixture) -> None:
    from gecko_distill.cli import main

    (beir / "qrels" / "test.tsv").unlink()
    assert main(["eval", "default", str(beir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gecko-distill: error: ") and "qrels file not found" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert main(["eval", "default", str(beir), "--batch-size", "0"]) == 2
    assert "invalid option: --batch-size 0" in capsys.readouterr().err
