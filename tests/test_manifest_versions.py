"""Manifests record the run's environment (issue 14, part 7): python, gecko_distill, torch,
transformers, sentence-transformers and faiss versions, the command line and a UTC time; none of
it enters a fingerprint, so a folder written under other versions is still resumed and reused."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pytest

from gecko_distill import _io
from gecko_distill._io import StageCheckpoint, environment_record, fingerprint
from gecko_distill._version import __version__
from gecko_distill.config import FRetConfig
from gecko_distill.embedder.encoding import PROVENANCE_FILE
from gecko_distill.embedder.pretrain import PRETRAIN_RECORD, PretrainConfig, pretrain
from gecko_distill.embedder.selfcheck import SelfCheckConfig
from gecko_distill.embedder.train import TrainConfig, train, trained_from
from gecko_distill.records import GeneratedQuery

OTHER_ENVIRONMENT = {
    "versions": {
        "python": "3.0.0",
        "gecko_distill": "0.0.1",
        "torch": "1.0",
        "transformers": "1.0",
        "sentence_transformers": "1.0",
        "faiss": None,
    },
    "command": ["elsewhere"],
    "created_utc": "2000-01-01T00:00:00Z",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Torch on one thread (see test_pretrain.py): two waiting threads are much slower here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_environment_names_the_installed_versions_the_command_and_the_time(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/bin/gecko-distill", "push", "runs/model", "--token", "hf_secret"])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    record = environment_record()
    versions = record["versions"]
    assert versions["python"] == platform.python_version() and versions["gecko_distill"] == __version__
    assert versions["torch"] == metadata.version("torch")
    assert versions["transformers"] == metadata.version("transformers")
    assert versions["sentence_transformers"] == metadata.version("sentence-transformers")
    assert versions["faiss"] == metadata.version("faiss-cpu")
    assert record["command"] == ["gecko-distill", "push", "runs/model", "--token", "***"]  # no credential kept
    created = datetime.strptime(record["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert before <= created <= datetime.now(timezone.utc)


def _stage(folder: Path) -> StageCheckpoint:
    return StageCheckpoint("generate", GeneratedQuery, key=lambda q: q.passage_id, folder=folder, fingerprint="fp-1")


def test_a_stage_manifest_records_the_environment_and_resumes_under_another(tmp_path: Path, monkeypatch) -> None:
    stage = _stage(tmp_path / "generate")
    stage.add(GeneratedQuery(id="p1#0", passage_id="p1", task="find it", query="a query"))
    stage.finish(["p1"], {})
    manifest = json.loads((tmp_path / "generate" / "manifest.json").read_text())
    assert manifest["environment"]["versions"]["torch"] == metadata.version("torch")
    assert manifest["fingerprint"] == "fp-1"

    monkeypatch.setattr(_io, "environment_record", lambda: OTHER_ENVIRONMENT)  # a rerun with other versions, later
    again = _stage(tmp_path / "generate")
    assert again.complete and [q.id for q in again.records] == ["p1#0"]  # reused, not refused as stale


def test_fingerprints_are_config_only(monkeypatch) -> None:
    config = FRetConfig()
    before = fingerprint(config), fingerprint("generate", config.generate, "teacher")
    monkeypatch.setattr(_io, "environment_record", lambda: OTHER_ENVIRONMENT)
    monkeypatch.setattr(sys, "argv", ["other", "--command"])
    assert (fingerprint(config), fingerprint("generate", config.generate, "teacher")) == before


def test_a_trained_model_records_the_environment_and_is_reused_under_another(pydoc_passages, tmp_path: Path) -> None:
    from test_train import _distinct_topics, _examples, _write_fret

    manifest = {"teacher": "hand-written", "config_hash": "c" * 64, "fingerprint": "f" * 64}
    fret_dir = _write_fret(tmp_path / "fret", _examples(_distinct_topics(pydoc_passages, 12)), manifest)
    config = TrainConfig(max_steps=1, batch_size=4, max_seq_length=32, self_check=SelfCheckConfig(holdout_fraction=0.0))
    path = train(fret_dir, output_dir=tmp_path / "model", config=config)
    provenance = json.loads((path / PROVENANCE_FILE).read_text())
    assert provenance["environment"]["versions"]["sentence_transformers"] == metadata.version("sentence-transformers")
    assert trained_from(path, fret_dir, config=config)

    provenance["environment"] = OTHER_ENVIRONMENT  # trained under other versions, at another time
    (path / PROVENANCE_FILE).write_text(json.dumps(provenance))
    assert trained_from(path, fret_dir, config=config)
    assert not trained_from(path, fret_dir, config=config.model_copy(update={"seed": 7}))  # the config does count


def test_a_pretrained_model_records_the_environment_outside_its_identity(pydoc_passages, tmp_path: Path, monkeypatch) -> None:
    from test_pretrain import distinct_titles

    passages = distinct_titles(pydoc_passages, 8)
    config = PretrainConfig(batch_size=4, max_seq_length=32, min_pairs=8)
    path = pretrain(passages, output_dir=tmp_path / "pre", config=config)
    record = json.loads((path / PRETRAIN_RECORD).read_text())
    assert record["environment"]["versions"]["torch"] == metadata.version("torch")

    monkeypatch.setattr(_io, "environment_record", lambda: OTHER_ENVIRONMENT)
    assert pretrain(passages, output_dir=tmp_path / "pre", config=config) == path  # reused: same identity
    assert json.loads((path / PRETRAIN_RECORD).read_text()) == record
