"""FRet as a Hugging Face dataset: formatted triplets that sentence-transformers trains on as they
are, the provenance columns, the export folder with its dataset card, and the ``export`` command."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml
from test_train import _distinct_topics  # the shared picker of pydoc passages with distinct titles

from gecko_distill import FRetConfig, RetrieveConfig, build_fret
from gecko_distill.cli import export as export_command
from gecko_distill.cli.main import error_line
from gecko_distill.embedder.formatting import format_document, format_query
from gecko_distill.embedder.train import fret_dataset, load_fret
from gecko_distill.errors import InputError
from gecko_distill.fret.export import (
    FULL_SUBSET,
    MANIFEST_FILE,
    TRIPLET_COLUMNS,
    dataset_card,
    export_fret,
    fret_to_hf,
)
from gecko_distill.records import FRetExample, Passage
from gecko_distill.testing import FakeLLM

datasets = pytest.importorskip("datasets")


@pytest.fixture(scope="module")
def fret_dir(pydoc_passages, embedder, tmp_path_factory) -> Path:
    """A real FRet folder: build_fret with the fake teacher on 12 pydoc passages."""
    out = tmp_path_factory.mktemp("fret") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GECKO_DISTILL_CACHE", str(tmp_path_factory.mktemp("cache")))
        build_fret(
            _distinct_topics(pydoc_passages, 12),
            llm=FakeLLM(),
            embedder=embedder,
            config=FRetConfig(retrieve=RetrieveConfig(top_n=4)),
            output_dir=out,
        )
    return out


def _symmetric_example() -> FRetExample:
    return FRetExample(
        id="sts#0",
        task="Retrieve sentences that are semantically similar to the given sentence",
        query="The cat sleeps.",
        positive=Passage(id="a", text="A cat is asleep."),
        negative=Passage(id="b", title="Dogs", text="Dogs bark."),
        seed_passage_id="a",
        positive_is_seed=True,
        positive_ranks={"ql": 1},
        negative_ranks={"ql": 3, "rc": 2},
    )


def test_columns_are_formatted_as_training_formats_them(fret_dir: Path) -> None:
    examples, _ = load_fret(fret_dir)
    plain = fret_to_hf(fret_dir)  # no query_format in a build-fret manifest: plain, as train defaults to
    assert plain.column_names == list(TRIPLET_COLUMNS)
    assert plain.to_list() == fret_dataset(examples, "plain").to_list()
    gecko = fret_to_hf(fret_dir, "gecko")
    first = examples[0]
    assert gecko[0] == {
        "anchor": format_query(first.task, first.query, "gecko"),
        "positive": format_document(first.positive.text, first.positive.title, "gecko"),
        "negative": format_document(first.negative.text, first.negative.title, "gecko"),
    }
    symmetric = fret_to_hf([_symmetric_example()], "gecko")[0]  # both sides in the query format
    assert symmetric["positive"] == format_query(_symmetric_example().task, "A cat is asleep.", "gecko")


def test_the_manifest_format_is_the_default(fret_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "synth"
    shutil.copytree(fret_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "query_format": "e5"}))
    example = load_fret(folder)[0][0]
    assert fret_to_hf(folder)[0]["anchor"] == f"Instruct: {example.task}\nQuery: {example.query}"
    (folder / "manifest.json").write_text(json.dumps({**manifest, "query_format": "bogus"}))
    with pytest.raises(InputError, match="query_format 'bogus'"):
        fret_to_hf(folder)


def test_provenance_columns_hold_the_raw_records(fret_dir: Path) -> None:
    examples, _ = load_fret(fret_dir)
    full = fret_to_hf(fret_dir, provenance=True)
    assert full.column_names[:3] == list(TRIPLET_COLUMNS)
    for row, example in zip(full, examples):
        assert (row["id"], row["task"], row["query"]) == (example.id, example.task, example.query)
        assert (row["positive_id"], row["positive_text"]) == (example.positive.id, example.positive.text)
        assert (row["negative_id"], row["negative_title"]) == (example.negative.id, example.negative.title)
        assert row["seed_passage_id"] == example.seed_passage_id and row["positive_is_seed"] == example.positive_is_seed
        for name, rank in example.positive_ranks.items():
            assert row[f"positive_{name}_rank"] == rank
    mixed = fret_to_hf([_symmetric_example(), examples[0]], "gecko", provenance=True)
    assert mixed["symmetric"] == [True, False]
    assert mixed["positive_rc_rank"] == [None, examples[0].positive_ranks["rc"]]  # a rank one example lacks is None


def test_sentence_transformers_trains_on_the_export_directly(fret_dir: Path, tmp_path: Path) -> None:
    """The issue's "done" test: SentenceTransformerTrainer + MNRL on the exported folder, as it is."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from gecko_distill.embedder.encoding import load_model

    exported = export_fret(fret_dir, tmp_path / "hf")
    train_set = datasets.load_from_disk(str(exported))
    model = load_model(device="cpu")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "checkpoints"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_set, loss=losses.MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    losses_seen = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses_seen) == 2 and all(math.isfinite(v) and v > 0 for v in losses_seen)
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters())


def test_mine_hard_negatives_takes_the_export(fret_dir: Path, embedder) -> None:
    from sentence_transformers.util import mine_hard_negatives

    triplets = fret_to_hf(fret_dir)
    mined = mine_hard_negatives(triplets, embedder, num_negatives=1, verbose=False, batch_size=8)
    assert mined.column_names == ["anchor", "positive", "negative"]
    assert set(mined["anchor"]) <= set(triplets["anchor"]) and len(mined) > 0
    corpus = set(triplets["positive"])
    assert all(neg in corpus and neg != pos for neg, pos in zip(mined["negative"], mined["positive"]))


def test_export_folder_layout_and_card(fret_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((fret_dir / "manifest.json").read_text())
    out = export_fret(fret_dir, tmp_path / "hf", license="cc-by-sa-4.0")
    assert datasets.load_from_disk(str(out)).to_list() == fret_to_hf(fret_dir).to_list()
    assert datasets.load_from_disk(str(out / FULL_SUBSET)).to_list() == fret_to_hf(fret_dir, provenance=True).to_list()
    assert json.loads((out / MANIFEST_FILE).read_text()) == manifest
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "cc-by-sa-4.0" and front["size_categories"] == ["n<1K"] and front["language"] == ["en"]
    assert [c["config_name"] for c in front["configs"]] == ["triplet", FULL_SUBSET]
    assert f"| teacher | {manifest['teacher']} |" in card and f"| config hash | {manifest['config_hash']} |" in card
    assert f"| passages | {manifest['counts']['passages']} |" in card
    assert f"| examples | {manifest['counts']['examples']} |" in card
    assert "Licence of the source corpus: cc-by-sa-4.0." in card and '"top_n": 4' in card
    assert not list(tmp_path.glob(".hf.*")), "the staging folder is left behind"


def test_the_card_subsets_load_as_a_hub_repo_would(fret_dir: Path, tmp_path: Path) -> None:
    """On the Hub, ``load_dataset(repo)`` reads the README's configs (locally, ``load_dataset``
    refuses a folder with save_to_disk's state.json, so it is left out of the copy)."""
    out = export_fret(fret_dir, tmp_path / "hf")
    repo = tmp_path / "repo"
    shutil.copytree(out, repo, ignore=shutil.ignore_patterns("state.json"))
    cache = str(tmp_path / "hf_cache")
    assert datasets.load_dataset(str(repo), split="train", cache_dir=cache).column_names == list(TRIPLET_COLUMNS)
    full = datasets.load_dataset(str(repo), FULL_SUBSET, split="train", cache_dir=cache)
    assert full.to_list() == fret_to_hf(fret_dir, provenance=True).to_list()


def test_card_licence_and_skips() -> None:
    manifest = {"stats": {"generate": {"queries": 9, "skipped": {"copy_of_passage": 2, "too_short": 5}}}}
    card = dataset_card(manifest, num_examples=9, query_format="gecko")
    assert "license: unknown" in card and "Licence of the source corpus: unknown, see the source corpus." in card
    assert "- generate: too_short 5, copy_of_passage 2" in card
    assert "`task: {task} | query: {query}`" in card
    custom = dataset_card({}, num_examples=1, query_format="plain", license="Terms of ACME Corp, see acme.example")
    assert "license: other" in custom and "Licence of the source corpus: Terms of ACME Corp, see acme.example." in custom


def test_an_in_memory_run_exports_with_its_statistics(pydoc_passages, embedder, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache"))
    fret = build_fret(
        _distinct_topics(pydoc_passages, 6), llm=FakeLLM(), embedder=embedder, config=FRetConfig(retrieve=RetrieveConfig(top_n=3))
    )
    assert fret_to_hf(fret, "gecko")["anchor"] == [format_query(e.task, e.query, "gecko") for e in fret]
    card = (export_fret(fret, tmp_path / "hf") / "README.md").read_text()
    assert f"| queries generated | {fret.stats['generate']['queries']} |" in card and "| teacher |" not in card


def test_bad_sources_and_targets_are_one_line_errors(fret_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no FRet examples"):
        fret_to_hf([])
    with pytest.raises(InputError, match="item 0 is a str"):
        fret_to_hf(["not a record"])
    with pytest.raises(InputError, match="fret.jsonl: FRet file not found"):
        fret_to_hf(tmp_path / "nothing")
    with pytest.raises(InputError, match="is the FRet folder"):
        export_fret(fret_dir, fret_dir)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty; choose another folder, or overwrite"):
        export_fret(fret_dir, busy)
    with pytest.raises(InputError, match="not an earlier FRet export"):
        export_fret(fret_dir, busy, overwrite=True)
    assert (busy / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_export(fret_dir: Path, tmp_path: Path) -> None:
    out = export_fret(fret_dir, tmp_path / "hf", query_format="plain")
    export_fret(fret_dir, out, query_format="gecko", overwrite=True)
    assert datasets.load_from_disk(str(out))[0]["anchor"].startswith("task: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gecko-distill")
    export_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_export_command(fret_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "hf"
    assert _run_cli(["export", str(fret_dir), "--to", str(out), "--input-format", "e5", "--license", "mit"]) == 0
    printed = capsys.readouterr().out
    examples = load_fret(fret_dir)[0]
    assert printed.startswith(f"wrote {len(examples)} examples to {out}")
    assert datasets.load_from_disk(str(out))[0]["anchor"].startswith("Instruct: ")
    assert "license: mit" in (out / "README.md").read_text()
    with pytest.raises(InputError) as refused:
        _run_cli(["export", str(fret_dir), "--to", str(out)])
    assert (
        error_line(refused.value) == f"{out}: folder exists and is not empty; choose another folder, or overwrite (--overwrite)"
    )
    with pytest.raises(SystemExit):
        _run_cli(["export", str(fret_dir), "--to", str(out), "--input-format", "fancy"])
