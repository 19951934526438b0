import json

import pytest

from gecko_distill import GeneratedQuery, StaleOutputError
from gecko_distill._io import StageCheckpoint


def make(folder, fp="fp1", overwrite=False):
    return StageCheckpoint("generate", GeneratedQuery, key=lambda q: q.id, folder=folder, fingerprint=fp, overwrite=overwrite)


def query(i: int) -> GeneratedQuery:
    return GeneratedQuery(id=f"p{i}#0", passage_id=f"p{i}", task="t", query=f"q{i}")


def test_records_are_appended_and_resumed(tmp_path):
    first = make(tmp_path / "generate")
    first.add(query(0))
    first.skip("p1#0", "too_short", "x")
    # a new process over the same folder sees both, and the stage is not complete yet
    again = make(tmp_path / "generate")
    assert not again.complete and again.done_ids == {"p0#0", "p1#0"} and again.resumed == 2
    again.add(query(2))
    result = again.finish(order=["p2#0", "p0#0"], stats={"n": 1})
    assert [q.id for q in result.records] == ["p2#0", "p0#0"] and result.skip_counts == {"too_short": 1}
    manifest = json.loads((tmp_path / "generate" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["fingerprint"] == "fp1"
    assert manifest["counts"] == {"records": 2, "skips": 1} and manifest["skips_by_reason"] == {"too_short": 1}
    assert make(tmp_path / "generate").complete


def test_partial_last_line_from_a_killed_run_is_dropped(tmp_path, caplog):
    cp = make(tmp_path / "generate")
    cp.add(query(0))
    with open(tmp_path / "generate" / "records.jsonl", "a") as f:
        f.write('{"id": "p1#0", "passage_id": "p1", "ta')  # killed mid-write
    resumed = make(tmp_path / "generate")
    assert resumed.done_ids == {"p0#0"} and "partial last line" in caplog.text
    resumed.add(query(1))
    assert [q.id for q in make(tmp_path / "generate").records] == ["p0#0", "p1#0"]


def test_stale_fingerprint_is_refused_with_a_clear_message(tmp_path):
    make(tmp_path / "generate", fp="aaaaaaaaaaaaaaaa").add(query(0))
    with pytest.raises(
        StaleOutputError,
        match=r"refusing to reuse the 'generate' stage output.*another config or input "
        r"\(fingerprint aaaaaaaaaaaa, now bbbbbbbbbbbb\).*--overwrite",
    ):
        make(tmp_path / "generate", fp="bbbbbbbbbbbbbbbb")


def test_overwrite_rebuilds_a_stale_stage(tmp_path):
    make(tmp_path / "generate", fp="a").add(query(0))
    rebuilt = make(tmp_path / "generate", fp="b", overwrite=True)
    assert rebuilt.records == [] and not rebuilt.complete


def test_folder_without_manifest_is_refused(tmp_path):
    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "records.jsonl").write_text("")
    with pytest.raises(StaleOutputError, match="it has no manifest"):
        make(tmp_path / "generate")


def test_a_stale_folder_names_the_changed_settings(tmp_path):
    from gecko_distill import RetrieveConfig

    def stage(top_n: int, teacher: str = "gemma", overwrite: bool = False) -> StageCheckpoint:
        settings = {"retrieve": RetrieveConfig(top_n=top_n), "teacher": teacher}
        return StageCheckpoint(
            "retrieve",
            GeneratedQuery,
            key=lambda q: q.id,
            folder=tmp_path / "retrieve",
            fingerprint=f"fp-{top_n}-{teacher}",
            overwrite=overwrite,
            settings=settings,
        )

    stage(8).add(query(0))
    manifest = json.loads((tmp_path / "retrieve" / "manifest.json").read_text())
    assert manifest["settings"]["retrieve"]["top_n"] == 8 and manifest["settings"]["teacher"] == "gemma"
    with pytest.raises(StaleOutputError) as raised:
        stage(6, teacher="qwen")
    message = str(raised.value)
    assert "because it was written with other settings (retrieve.top_n: 8 → 6, teacher: gemma → qwen)" in message
    assert "fingerprint" not in message and "--overwrite" in message


def test_the_rebuild_warning_names_the_changed_settings(tmp_path, caplog):
    make(tmp_path / "generate", fp="a").finish([], {})
    manifest_path = tmp_path / "generate" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["settings"] = {"generate": {"queries_per_passage": 1}}
    manifest_path.write_text(json.dumps(manifest))
    StageCheckpoint(
        "generate",
        GeneratedQuery,
        key=lambda q: q.id,
        folder=tmp_path / "generate",
        fingerprint="b",
        overwrite=True,
        settings={"generate": {"queries_per_passage": 2}},
    )
    assert "rebuilding stage 'generate' (other settings (generate.queries_per_passage: 1 → 2))" in caplog.text


def test_an_old_manifest_without_settings_keeps_the_fingerprint_message(tmp_path):
    make(tmp_path / "generate", fp="aaaaaaaaaaaaaaaa").add(query(0))
    manifest_path = tmp_path / "generate" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest.pop("settings") is None  # no settings given: none recorded
    manifest_path.write_text(json.dumps(manifest))  # as an older version wrote it
    with pytest.raises(StaleOutputError, match=r"another config or input \(fingerprint aaaaaaaaaaaa, now bbbbbbbbbbbb\)"):
        StageCheckpoint(
            "generate",
            GeneratedQuery,
            key=lambda q: q.id,
            folder=tmp_path / "generate",
            fingerprint="bbbbbbbbbbbbbbbb",
            settings={"generate": {"queries_per_passage": 2}},
        )


def test_same_settings_but_another_fingerprint_names_the_fingerprints(tmp_path):
    settings = {"generate": {"queries_per_passage": 1}}
    StageCheckpoint(
        "generate",
        GeneratedQuery,
        key=lambda q: q.id,
        folder=tmp_path / "generate",
        fingerprint="aaaaaaaaaaaaaaaa",
        settings=settings,
    ).add(query(0))
    with pytest.raises(StaleOutputError, match=r"another config or input \(fingerprint aaaaaaaaaaaa, now bbbbbbbbbbbb\)"):
        StageCheckpoint(
            "generate",
            GeneratedQuery,
            key=lambda q: q.id,
            folder=tmp_path / "generate",
            fingerprint="bbbbbbbbbbbbbbbb",
            settings=settings,
        )
