"""Notebook and terminal views: a short ``repr`` and an HTML table of an FRet dataset, and a
retrieval report as a pandas DataFrame and an HTML table."""

from __future__ import annotations

import pytest

from gecko_distill import FRetConfig, RetrieveConfig, build_fret
from gecko_distill.embedder.evaluate import DimScores, EvalConfig, RetrievalReport
from gecko_distill.fret.pipeline import FRetDataset
from gecko_distill.records import FRetExample, Passage
from gecko_distill.report import fret_html, fret_repr, report_frame, report_html, report_rows
from gecko_distill.testing import FakeLLM

LONG = "The import statement finds a module, loads and initialises it if necessary, and binds names. " * 12


def _examples(n: int) -> list[FRetExample]:
    return [
        FRetExample(
            id=f"q{i}",
            task="Given a question, retrieve passages that answer it",
            query=f"question number {i} <about> imports",
            positive=Passage(id=f"p{i}", title="import", text=LONG),
            negative=Passage(id=f"n{i}", text=f"negative {i} " + LONG),
            seed_passage_id=f"p{i}",
            positive_is_seed=i % 4 != 0,
            positive_ranks={"ql": 1},
            negative_ranks={"ql": 9},
        )
        for i in range(n)
    ]


STATS = {"corpus": {"passages": 80}, "generate": {"queries": 76}, "relabel": {"positive_not_seed": 0.25}, "examples": 74}


def _report(model: str, ndcg: float) -> RetrievalReport:
    scores = [
        DimScores(dim=dim, ndcg_at_10=ndcg * dim / 384, mrr_at_10=0.7, recall_at_10=0.9, recall_at_100=0.99) for dim in (384, 64)
    ]
    return RetrievalReport(
        model=model,
        dataset="manpages",
        config=EvalConfig(input_format="plain"),
        num_queries=600,
        num_corpus=1024,
        scores=scores,
        encode_seconds={"corpus": 1.0, "queries": 0.2},
    )


def test_the_repr_of_74_long_examples_is_a_few_lines() -> None:
    examples = _examples(74)
    text = fret_repr(examples, STATS, "runs/fret")
    assert len(text) < 700 and len(text.splitlines()) == 6
    assert text.splitlines()[0] == (
        "FRetDataset: 74 examples from 80 passages (76 queries); 25.0% of positives are not the seed; output_dir='runs/fret'"
    )
    assert "question number 0 <about> imports" in text and "question number 1 " not in text
    assert "... 73 more" in text
    assert len(repr(list(examples))) > 50_000  # what repr(fret) printed before
    assert repr(FRetDataset(examples, STATS, "runs/fret")) == text


def test_the_repr_counts_when_there_are_no_statistics() -> None:
    text = fret_repr(_examples(4))
    assert text.splitlines()[0] == "FRetDataset: 4 examples; 25.0% of positives are not the seed"
    assert fret_repr([]) == "FRetDataset: 0 examples"


def test_the_html_view_is_escaped_and_bounded() -> None:
    page = fret_html(_examples(74), STATS, "runs/<fret>", max_rows=3)
    assert page.count("<tr>") == 4 and "… 71 more" in page
    assert "question number 0 &lt;about&gt; imports" in page and "<about>" not in page
    assert "runs/&lt;fret&gt;" in page and len(page) < 4000


def test_a_report_as_a_dataframe_and_html() -> None:
    import pandas as pd

    base, tuned = _report("base", 0.781), _report("distilled", 0.798)
    frame = report_frame(tuned)
    assert list(frame.columns) == [
        "model",
        "dataset",
        "input_format",
        "dim",
        "ndcg_at_10",
        "mrr_at_10",
        "recall_at_10",
        "recall_at_100",
    ]
    assert frame.set_index("dim").loc[384, "ndcg_at_10"] == pytest.approx(0.798)
    both = pd.concat([report_frame(base), report_frame(tuned)])
    assert both.pivot(index="dim", columns="model", values="ndcg_at_10").loc[384].to_dict() == pytest.approx(
        {"base": 0.781, "distilled": 0.798}
    )
    assert len(report_rows(base)) == 2
    page = report_html(tuned)
    assert "<b>distilled</b> on <code>manpages</code>: 600 queries, 1024 documents, plain input" in page
    assert "<th>nDCG@10</th>" in page and "<td>0.7980</td>" in page and page.count("<tr>") == 3


def test_fret_dataset_repr_and_html(pydoc_passages, embedder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache"))
    fret = build_fret(pydoc_passages[:6], llm=FakeLLM(), embedder=embedder, config=FRetConfig(retrieve=RetrieveConfig(top_n=3)))
    assert repr(fret) == fret_repr(fret, fret.stats, None) and len(repr(fret)) < 700
    assert fret._repr_html_() == fret_html(fret, fret.stats, None)
    assert fret.to_hf().column_names == ["anchor", "positive", "negative"]


def test_retrieval_report_to_pandas_and_html() -> None:
    report = _report("distilled", 0.798)
    assert report.to_pandas().equals(report_frame(report))
    assert report._repr_html_() == report_html(report)
