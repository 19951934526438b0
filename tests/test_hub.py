"""push_to_hub and ``gecko-distill push`` against a fake Hugging Face Hub on 127.0.0.1
(tests/fake_hub.py), through the real ``huggingface_hub`` client.

Two upload paths are covered: the one this install takes (with ``hf_xet``, the files the fake Hub
marks "regular" travel inside the commit), and the LFS protocol (batch, PUT, verify) that
``huggingface_hub`` uses without ``hf_xet``. Not covered: Xet storage itself, which a binary file
takes when ``hf_xet`` is installed and the Hub asks for LFS.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from fake_hub import FakeHub

from gecko_distill._version import __version__
from gecko_distill.cli import push as push_command
from gecko_distill.cli.main import error_line
from gecko_distill.errors import InputError
from gecko_distill.fret.export import export_fret
from gecko_distill.hub import HubError, folder_kind, push_to_hub
from gecko_distill.records import FRetExample, Passage

hf_hub = pytest.importorskip("huggingface_hub")
pytest.importorskip("datasets")

TOKEN = "hf_TestTokenThatMustNeverLeak0123"


@pytest.fixture(autouse=True)
def isolated_hub_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real token or cache: HF_HOME in tmp_path, HF_TOKEN unset."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(hf_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub(token=TOKEN, lfs=False) as fake:
        # huggingface_hub asks its default endpoint for an "agent harnesses" list (its user agent):
        # point that at the fake too, so nothing leaves the machine
        monkeypatch.setattr(hf_hub.constants, "ENDPOINT", fake.url)
        yield fake


@pytest.fixture
def lfs_hub(monkeypatch: pytest.MonkeyPatch):
    """The fake Hub asking for LFS uploads of binary files, and a client without hf_xet."""
    import huggingface_hub._commit_api as commit_api
    import huggingface_hub.hf_api as hf_api

    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)
    monkeypatch.setattr(commit_api, "is_xet_available", lambda: False)
    with FakeHub(token=TOKEN, lfs=True) as fake:
        monkeypatch.setattr(hf_hub.constants, "ENDPOINT", fake.url)
        yield fake


def _examples() -> list[FRetExample]:
    ls = Passage(id="ls", title="ls", text="List directory contents.")
    cp = Passage(id="cp", title="cp", text="Copy files and directories.")
    return [
        FRetExample(
            id=f"q{i}",
            task="Find the command",
            query=query,
            positive=pos,
            negative=neg,
            seed_passage_id=pos.id,
            positive_is_seed=True,
            positive_ranks={"ql": 1},
            negative_ranks={"ql": 2},
        )
        for i, (query, pos, neg) in enumerate([("list files", ls, cp), ("copy a file", cp, ls)])
    ]


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return export_fret(_examples(), tmp_path / "export", license="mit")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model folder as sentence-transformers saves one (the weights are binary)."""
    from safetensors.numpy import save_file

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]'
    )
    (folder / "config_sentence_transformers.json").write_text('{"prompts": {"query": "", "document": ""}}')
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- sentence-transformers\n---\n# A model\n")
    save_file({"weight": np.arange(4096, dtype=np.float32).reshape(64, 64)}, str(folder / "model.safetensors"))
    return folder


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _api_calls(fake: FakeHub) -> list[tuple[str, str]]:
    return [(r.method, r.path.split("?")[0]) for r in fake.log if r.path.startswith("/api/") and "agent-harnesses" not in r.path]


def test_a_dataset_folder_arrives_whole(hub: FakeHub, dataset_dir: Path) -> None:
    url = push_to_hub(dataset_dir, "me/pydoc-fret", endpoint=hub.url, token=TOKEN)
    assert url == f"{hub.url}/datasets/me/pydoc-fret"
    repo = hub.repo("dataset", "me/pydoc-fret")
    assert repo.files == _local_files(dataset_dir)
    assert repo.commits == [f"Upload dataset with gecko_distill {__version__}"]
    assert not repo.private
    assert _api_calls(hub) == [
        ("POST", "/api/repos/create"),
        ("POST", "/api/validate-yaml"),
        ("POST", "/api/datasets/me/pydoc-fret/preupload/main"),
        ("POST", "/api/datasets/me/pydoc-fret/commit/main"),
    ]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.log if r.path.startswith("/api/repos"))


def test_binary_files_go_through_lfs_and_the_token_stays_off_storage(lfs_hub: FakeHub, model_dir: Path) -> None:
    url = push_to_hub(model_dir, "me/tiny-model", endpoint=lfs_hub.url, token=TOKEN, private=True)
    assert url == f"{lfs_hub.url}/me/tiny-model"  # model repos have no prefix
    repo = lfs_hub.repo("model", "me/tiny-model")
    assert repo.files == _local_files(model_dir) and repo.private
    puts = [r for r in lfs_hub.log if r.method == "PUT"]
    assert [r.path for r in puts] == [f"/lfs/{hashlib.sha256((model_dir / 'model.safetensors').read_bytes()).hexdigest()}"]
    assert all("authorization" not in r.headers for r in puts), "the token went to the storage URL"
    assert [r.path for r in lfs_hub.log if "lfs" in r.path and r.method == "POST"] == [
        "/me/tiny-model.git/info/lfs/objects/batch",
        "/lfs-verify",
    ]


def test_a_second_push_commits_to_the_existing_repo(hub: FakeHub, dataset_dir: Path) -> None:
    push_to_hub(dataset_dir, "me/ds", endpoint=hub.url, token=TOKEN)
    (dataset_dir / "README.md").write_text((dataset_dir / "README.md").read_text() + "\nMore words.\n")
    push_to_hub(dataset_dir, "me/ds", endpoint=hub.url, token=TOKEN, commit_message="Update the card")
    repo = hub.repo("dataset", "me/ds")
    assert repo.commits[-1] == "Update the card" and repo.files["README.md"].endswith(b"More words.\n")
    assert [r.status for r in hub.log if r.path == "/api/repos/create"] == [200, 409]


def test_the_token_is_never_logged_written_or_shown(hub: FakeHub, dataset_dir: Path, tmp_path: Path, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)
    push_to_hub(dataset_dir, "me/ds", endpoint=hub.url, token=TOKEN)
    assert any(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.log)  # it was used
    with pytest.raises(HubError) as refused:
        push_to_hub(dataset_dir, "me/ds", endpoint=hub.url, token=TOKEN[:-1] + "X")
    message = str(refused.value)
    assert "HTTP 401" in message and "hf auth login" in message and "\n" not in message
    assert TOKEN not in message and TOKEN[:-1] not in message
    seen = caplog.text + "".join(capfd.readouterr())
    assert "HTTP Request: POST" in seen  # the client's own log lines were captured
    assert TOKEN not in seen and TOKEN[:-1] not in seen
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN[:-1].encode() not in path.read_bytes(), path


def test_the_token_comes_from_the_environment(hub: FakeHub, dataset_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_to_hub(dataset_dir, "me/from-env", endpoint=hub.url)
    assert hub.repo("dataset", "me/from-env").files
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="HTTP 401"):
        push_to_hub(dataset_dir, "me/anonymous", endpoint=hub.url)


def test_an_unreachable_hub_is_one_line(dataset_dir: Path, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(hf_hub.constants, "ENDPOINT", endpoint)
    with pytest.raises(HubError) as failed:
        push_to_hub(dataset_dir, "me/ds", endpoint=endpoint, token=TOKEN)
    assert str(failed.value).startswith(f"{endpoint}: cannot reach the Hub to push me/ds (")


def test_folders_and_repo_ids_are_checked_before_any_request(hub: FakeHub, dataset_dir: Path, model_dir: Path, tmp_path) -> None:
    assert (folder_kind(dataset_dir), folder_kind(model_dir), folder_kind(tmp_path)) == ("dataset", "model", None)
    with pytest.raises(InputError, match="neither a dataset folder .* say which with --dataset or --model"):
        push_to_hub(tmp_path, "me/x", endpoint=hub.url, token=TOKEN)
    with pytest.raises(InputError, match="holds a dataset, not a model"):
        push_to_hub(dataset_dir, "me/x", kind="model", endpoint=hub.url, token=TOKEN)
    with pytest.raises(InputError, match="not a folder"):
        push_to_hub(tmp_path / "missing", "me/x", endpoint=hub.url, token=TOKEN)
    with pytest.raises(InputError, match="not a Hub repo id"):
        push_to_hub(dataset_dir, "me/x/y", endpoint=hub.url, token=TOKEN)
    assert _api_calls(hub) == []


def test_a_card_the_hub_rejects_fails_before_upload(hub: FakeHub, dataset_dir: Path) -> None:
    readme = dataset_dir / "README.md"
    readme.write_text(readme.read_text().replace("license: mit", "license: My Own Licence"))
    with pytest.raises(HubError, match="Invalid metadata in README.md"):
        push_to_hub(dataset_dir, "me/ds", endpoint=hub.url, token=TOKEN)
    assert hub.repo("dataset", "me/ds").files == {}


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gecko-distill")
    push_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_push_command(hub: FakeHub, dataset_dir: Path, model_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _run_cli(["push", str(dataset_dir), "me/ds", "--endpoint", hub.url, "--private"]) == 0
    assert capsys.readouterr().out == f"pushed {dataset_dir} to {hub.url}/datasets/me/ds\n"
    assert hub.repo("dataset", "me/ds").private
    assert _run_cli(["push", str(model_dir), "tiny", "--model", "--endpoint", hub.url, "--message", "first"]) == 0
    assert hub.repo("model", "fake-user/tiny").commits == ["first"]  # no namespace: the token owner's
    with pytest.raises(InputError) as wrong:
        _run_cli(["push", str(model_dir), "me/x", "--dataset", "--endpoint", hub.url])
    assert error_line(wrong.value) == f"{model_dir}: holds a model, not a dataset"
    with pytest.raises(SystemExit):
        _run_cli(["push", str(model_dir), "me/x", "--dataset", "--model"])
