"""Pre-finetuning (issue 12): (title, passage) pairs of the corpus, no LLM, before FRet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_train import ONE_TINY_STEP

from gecko_distill import PretrainConfig, pretrain
from gecko_distill.cli import main
from gecko_distill.embedder.encoding import PROVENANCE_FILE, load_model
from gecko_distill.embedder.pretrain import PRETRAIN_RECORD, load_qa_pairs, skip_reason, title_pairs
from gecko_distill.embedder.selfcheck import SelfCheckConfig
from gecko_distill.errors import InputError, StaleOutputError
from gecko_distill.paths import default_embedder_path
from gecko_distill.records import FRetExample, Passage

CONFIG = PretrainConfig(batch_size=4, max_seq_length=32, min_pairs=8)
CLI_OPTIONS = ["--batch-size", "4", "--max-seq-length", "32", "--min-pairs", "8"]
PROBE = ["how do I write a class", "the assert statement"]


def distinct_titles(passages: list[Passage], n: int, skip: int = 0) -> list[Passage]:
    """``n`` passages with distinct titles and texts (a few pydoc paragraphs repeat under other titles)."""
    seen, picked = set(), []
    for p in passages[skip:]:
        if p.title not in seen and p.text not in seen:
            seen.update((p.title, p.text))
            picked.append(p)
        if len(picked) == n:
            return picked
    raise AssertionError("not enough distinct titles")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Torch on one thread in this module: on a busy machine, two threads that wait for each other are
    several times slower than one. Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(pydoc_passages, tmp_path_factory) -> Path:
    """8 passages with distinct titles, and 3 without a title."""
    rows = [{"_id": p.id, "title": p.title, "text": p.text} for p in distinct_titles(pydoc_passages, 8)]
    rows += [{"_id": f"untitled-{i}", "text": p.text} for i, p in enumerate(distinct_titles(pydoc_passages, 3, skip=300))]
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


@pytest.fixture(scope="module")
def qa_file(pydoc_passages, tmp_path_factory) -> Path:
    """4 question-answer pairs, one of them twice."""
    rows = [
        {
            "task": "Given a question, retrieve the passage that answers it",
            "anchor": f"what is {p.title}?",
            "positive": {"title": p.title, "text": p.text},
        }
        for p in distinct_titles(pydoc_passages, 4, skip=200)
    ]
    return write_jsonl(tmp_path_factory.mktemp("qa") / "qa.jsonl", [*rows, rows[0]])


@pytest.fixture(scope="module")
def pretrained(corpus, qa_file, tmp_path_factory) -> Path:
    path = pretrain(corpus, output_dir=tmp_path_factory.mktemp("pre") / "model", config=CONFIG, qa_pairs=qa_file)
    assert path is not None
    return path


def test_title_pairs_use_the_title_as_query_and_the_text_alone_as_document(pydoc_passages) -> None:
    titled = distinct_titles(pydoc_passages, 3)
    examples, counts = title_pairs([*titled, Passage(id="u", text="no title"), Passage(id="t", title="Same", text="same")])
    assert [e.query for e in examples] == [p.title for p in titled]
    assert all(e.positive.title == "" and e.positive.text == p.text for e, p in zip(examples, titled))
    assert [e.negative.id for e in examples] == [titled[1].id, titled[0].id, titled[0].id]  # matched two by two
    assert counts == {"passages": 5, "pairs": 3, "titles": 3, "untitled": 1, "title_is_text": 1, "duplicate_pairs": 0}


def test_two_batches_of_title_pairs_always_fill(pydoc_passages) -> None:
    """A passage is never twice in a batch, so an example cannot share one with the pair whose passage is
    its negative. Matched negatives leave half of the pairs free to fill a batch; "next pair" negatives
    chain every pair to two others, and 32 pairs could not fill a batch of 16."""
    import torch
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    from gecko_distill.embedder.train import fret_dataset

    examples, _ = title_pairs(distinct_titles(pydoc_passages, 32))
    dataset = fret_dataset(examples, "plain")
    for seed in range(5):
        sampler = NoDuplicatesBatchSampler(dataset, batch_size=16, drop_last=True, generator=torch.Generator(), seed=seed)
        assert len(list(sampler)) == 2


def test_pretrains_from_a_corpus_with_titles_and_no_llm(pretrained, embedder) -> None:
    record = json.loads((pretrained / PRETRAIN_RECORD).read_text())
    assert record["pairs"] == {"title": 8, "qa": 4, "total": 12}
    assert record["skipped"] == {"untitled_passages": 3, "title_is_text": 0, "duplicate_title_pairs": 0, "duplicate_qa_pairs": 1}
    provenance = json.loads((pretrained / PROVENANCE_FILE).read_text())
    assert provenance["query_format"] == "plain"  # the base model's own format: a short stage cannot teach one
    assert provenance["examples_per_epoch"] == {"fret": 8, "qa_pairs": 4}
    assert provenance["self_check"]["status"] == "skipped"  # turned off inside pretrain
    assert not pretrained.with_name(pretrained.name + ".partial").exists()
    tuned = load_model(pretrained).encode(PROBE, normalize_embeddings=True)
    assert not np.allclose(tuned, embedder.encode(PROBE, normalize_embeddings=True), atol=1e-4)


def test_rerun_reuses_the_model_and_other_settings_are_refused(pretrained, corpus, qa_file, tmp_path) -> None:
    weights = pretrained / "model.safetensors"
    saved_at = weights.stat().st_mtime_ns
    assert pretrain(corpus, output_dir=pretrained, config=CONFIG, qa_pairs=qa_file) == pretrained
    assert weights.stat().st_mtime_ns == saved_at
    with pytest.raises(StaleOutputError, match=f"{pretrained}: holds a model pre-finetuned on other"):
        pretrain(corpus, output_dir=pretrained, config=CONFIG.model_copy(update={"epochs": 2.0}), qa_pairs=qa_file)
    with pytest.raises(StaleOutputError, match="pass overwrite=True"):
        pretrain(corpus, output_dir=pretrained, config=CONFIG)  # no QA pairs: other inputs
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no pre-finetuned model"):
        pretrain(corpus, output_dir=tmp_path / "other", config=CONFIG)
    assert weights.stat().st_mtime_ns == saved_at


def test_too_few_titled_passages_skip_the_stage(pydoc_passages, tmp_path, caplog) -> None:
    passages = [*distinct_titles(pydoc_passages, 5), *(p.text for p in distinct_titles(pydoc_passages, 20, skip=200))]
    assert pretrain(passages, output_dir=tmp_path / "pre", config=CONFIG) is None
    assert "pretrain: skipped: only 5 title-passage pairs (5 of 25 passages have a title), fewer than min_pairs=8" in caplog.text
    assert not (tmp_path / "pre").exists()
    assert skip_reason({"passages": 9, "untitled": 0, "pairs": 9, "titles": 9}, CONFIG.model_copy(update={"batch_size": 5})) == (
        "only 9 title-passage pairs (9 of 9 passages have a title), fewer than two batches of batch_size=5"
    )
    assert skip_reason({"passages": 9, "untitled": 0, "pairs": 9, "titles": 3}, CONFIG) == (
        "only 3 distinct titles, fewer than one batch of batch_size=4"
    )


def test_bad_qa_pairs_are_named(tmp_path) -> None:
    good = {"task": "answer it", "anchor": "who wrote ls?", "positive": "RMS."}
    bad = write_jsonl(tmp_path / "qa.jsonl", [good, {**good, "anchor": 3}])
    with pytest.raises(InputError, match=r"qa.jsonl:2: 'anchor' must be a non-empty string"):
        load_qa_pairs(bad)
    with pytest.raises(InputError, match="qa_pairs row 1: unknown column"):
        load_qa_pairs([good, {**good, "postive": "typo"}])
    with pytest.raises(InputError, match="qa_pairs row 1: either every QA row has a 'negative'"):
        load_qa_pairs([good, {**good, "negative": "x"}])
    with pytest.raises(InputError, match="fewer than one batch"):
        pretrain(["a"], output_dir=tmp_path / "pre", config=CONFIG, qa_pairs=[good])


def test_cli_pretrain(pretrained, corpus, qa_file, tmp_path, capsys) -> None:
    out = tmp_path / "pre"
    shutil.copytree(pretrained, out)
    args = ["pretrain", str(corpus), "--out", str(out), "--qa-pairs", str(qa_file), *CLI_OPTIONS]
    weights = out / "model.safetensors"
    copied_at = weights.stat().st_mtime_ns
    assert main(args) == 0  # the same inputs and settings as the API call: reused
    assert f"pretrained: {out} (8 title-passage pairs and 4 QA pairs)" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == copied_at
    assert main([*args, "--epochs", "0.5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"gecko-distill: error: {out}: holds a model pre-finetuned")
    assert main([*args, "--epochs", "0.5", "--overwrite"]) == 0
    assert weights.stat().st_mtime_ns != copied_at
    assert json.loads((out / PRETRAIN_RECORD).read_text())["config"]["epochs"] == 0.5
    assert main(["pretrain", str(corpus), "--out", str(tmp_path / "few")]) == 0  # 8 pairs < the default 64
    assert "pretrain: skipped: only 8 title-passage pairs" in capsys.readouterr().out
    assert not (tmp_path / "few").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "0"], "invalid option: --epochs 0.0: Input should be greater than 0"),
        (["--batch-size", "1"], "invalid option: --batch-size 1: Input should be greater than or equal to 2"),
        (
            ["--qa-pairs", "missing.jsonl"],
            "missing.jsonl: QA pairs file not found (expected JSONL rows with task, anchor, positive)",
        ),
    ],
)
def test_cli_bad_options_are_one_line(corpus, tmp_path, capsys, options, message) -> None:
    assert main(["pretrain", str(corpus), "--out", str(tmp_path / "pre"), *options]) == 2
    assert capsys.readouterr().err.strip() == f"gecko-distill: error: {message}"
    assert not (tmp_path / "pre").exists()


def fret_examples(passages: list[Passage]) -> list[FRetExample]:
    return [
        FRetExample(
            id=f"q{i}",
            task="Given a question, retrieve the passage that answers it",
            query=" ".join(p.text.split()[:10]),
            positive=p,
            negative=passages[(i + 1) % len(passages)],
            seed_passage_id=p.id,
            positive_is_seed=True,
            positive_ranks={},
            negative_ranks={},
        )
        for i, p in enumerate(passages)
    ]


def test_self_check_compares_against_the_reference_model(pretrained, pydoc_passages, embedder, tmp_path, monkeypatch) -> None:
    import gecko_distill.embedder.train as train_module
    from gecko_distill.embedder.selfcheck import holdout_split, passage_pool, score_variant

    check = SelfCheckConfig(holdout_fraction=0.34, min_holdout=4, blend_alphas=(1.0,), try_plain_input=False)
    config = train_module.TrainConfig(max_steps=1, batch_size=4, max_seq_length=32, matryoshka_dims=(384, 64), self_check=check)
    examples = fret_examples(distinct_titles(pydoc_passages, 12, skip=100))
    base_probe = []

    def recording(model, held, pool, dims, input_format, alpha):
        if alpha == 0.0 and not base_probe:
            base_probe.append(model.encode(PROBE, normalize_embeddings=True))
        return score_variant(model, held, pool, dims, input_format, alpha)

    monkeypatch.setattr(train_module, "score_variant", recording)
    out = train_module.train(
        examples, base_model=pretrained, output_dir=tmp_path / "m", config=config, reference_model=default_embedder_path()
    )
    reference = embedder.encode(PROBE, normalize_embeddings=True)
    np.testing.assert_allclose(base_probe[0], reference, atol=1e-5)  # the base of the check is the reference
    assert not np.allclose(load_model(pretrained).encode(PROBE, normalize_embeddings=True), reference, atol=1e-4)
    recorded = json.loads((out / PROVENANCE_FILE).read_text())["self_check"]
    held = holdout_split(examples, check)[1]
    expected = score_variant(embedder, held, passage_pool(held, examples, check), (384, 64), "plain", 0.0)
    assert recorded["base"]["ndcg_at_10"] == {str(d): v for d, v in expected.ndcg_at_10.items()}

    import torch

    with pytest.raises(InputError, match="reference_model 'Linear' does not have the architecture of the base model"):
        train_module.train(
            examples, base_model=pretrained, output_dir=tmp_path / "m2", config=config, reference_model=torch.nn.Linear(2, 2)
        )


def test_cli_run_pretrains_then_trains_from_the_pretrained_model(pydoc_passages, tmp_path, capsys, monkeypatch) -> None:
    import gecko_distill.cli.run as run_module
    import gecko_distill.embedder.train as train_module

    corpus = write_jsonl(
        tmp_path / "corpus.jsonl",
        [{"_id": p.id, "title": p.title, "text": p.text} for p in distinct_titles(pydoc_passages, 8, skip=50)],
    )
    real_config, real_train, calls = run_module._pretrain_config, train_module.train, []
    monkeypatch.setattr(run_module, "_pretrain_config", lambda args: real_config(args).model_copy(update={"min_pairs": 8}))
    monkeypatch.setattr(train_module, "train", lambda *a, **kw: calls.append(kw) or real_train(*a, **kw))
    out = tmp_path / "run"
    args = [
        "run",
        str(corpus),
        "--out",
        str(out),
        "--llm",
        "fake",
        "--top-n",
        "4",
        *ONE_TINY_STEP,
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"pretraining: on 8 (title, passage) pairs of the corpus, saved to {out / 'pretrained'}" in printed
    assert "model: saved to" in printed
    assert [(c["output_dir"], c.get("reference_model")) for c in calls] == [
        (out / "pretrained.partial", None),  # pretrain's own call: no self-check
        (out / "model", default_embedder_path()),  # the FRet model: compared with the user's base model
    ]
    assert calls[1]["base_model"] == str(out / "pretrained")
    assert json.loads((out / "model" / PROVENANCE_FILE).read_text())["base_model"] == "pretrained"
    assert json.loads((out / "model" / PRETRAIN_RECORD).read_text())["pairs"]["title"] == 8

    assert main(args) == 0  # nothing changed: both models are reused
    printed = capsys.readouterr().out
    assert "reused from" in printed and "reusing it" in printed and len(calls) == 2
    assert main([*args, "--no-pretrain"]) == 2  # another base model: never a stale model, never a silent replacement
    captured = capsys.readouterr()
    assert "pretraining: off (--no-pretrain)" in captured.out and "output folder is not empty" in captured.err
