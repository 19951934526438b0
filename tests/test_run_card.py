"""``gecko-distill run``: the distilled model's card holds its evaluation results at every dimension,
and a rerun reuses the model when the pre-finetuned model is the same (its ``identity``), even
though its ``pretrain.json`` records another time or other versions (issue 14, parts 1 and 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from test_pretrain import distinct_titles, write_jsonl
from test_train import ONE_TINY_STEP, _write_beir

from gecko_distill.cli import main
from gecko_distill.embedder.encoding import PROVENANCE_FILE
from gecko_distill.embedder.pretrain import PRETRAIN_RECORD

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_run_records_the_evaluation_in_the_card_and_reuses_the_model(pydoc_passages, tmp_path: Path, capsys, monkeypatch):
    import gecko_distill.cli.run as run_module

    passages = distinct_titles(pydoc_passages, 8, skip=50)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": p.id, "title": p.title, "text": p.text} for p in passages])
    beir = _write_beir(tmp_path / "beir" / "pydoc", passages)
    real_config = run_module._pretrain_config
    monkeypatch.setattr(run_module, "_pretrain_config", lambda args: real_config(args).model_copy(update={"min_pairs": 8}))
    out = tmp_path / "run"
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
        *ONE_TINY_STEP,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pretraining: on 8 (title, passage) pairs" in printed and "model: saved to" in printed
    model = out / "model"
    assert f"the distilled model's results added to its card {model / 'README.md'}" in printed
    card = ModelCard.load(model / "README.md")
    results = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    distilled = json.loads((out / "reports" / "distilled.json").read_text())
    for row in distilled["scores"]:
        assert results[(f"pydoc_dim_{row['dim']}", "cosine_ndcg@10")] == round(row["ndcg_at_10"], 4)
    assert [e["model"] for e in json.loads((model / PROVENANCE_FILE).read_text())["evaluations"]] == ["distilled"]

    # the pre-finetuned model rebuilt with the same inputs, at another time: the same model, so reused
    record_path = out / "pretrained" / PRETRAIN_RECORD
    record = json.loads(record_path.read_text())
    record["environment"] = {**record["environment"], "created_utc": "2000-01-01T00:00:00Z"}
    record_path.write_text(json.dumps(record))
    weights = model / "model.safetensors"
    trained_at = weights.stat().st_mtime_ns
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "reused from" in printed and "reusing it" in printed and weights.stat().st_mtime_ns == trained_at
    evaluations = json.loads((model / PROVENANCE_FILE).read_text())["evaluations"]
    assert len(evaluations) == 1  # the same evaluation again replaces the earlier one
