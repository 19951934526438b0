"""The miner's backend (issue 15): ``RetrieveConfig.backend`` and ``--embed-backend`` reach the
config fingerprint and the embedding cache key, and ONNX Runtime encodes the offline MiniLM as
torch does."""

from __future__ import annotations

import copy
import importlib.util
import sys

import numpy as np
import pytest

from gecko_distill import GeneratedQuery, Passage, RetrieveConfig, retrieve
from gecko_distill._io import fingerprint
from gecko_distill.cli.main import _parser
from gecko_distill.cli.options import fret_config
from gecko_distill.config import FRetConfig
from gecko_distill.embedder.backends import BACKENDS, backend_available, backend_of, use_backend
from gecko_distill.embedder.embedding_cache import EmbeddingCache, embedder_identity
from gecko_distill.embedder.encoding import load_model
from gecko_distill.errors import InputError, MissingDependencyError

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'gecko-distill[onnx]')")

SENTENCES = ["List directory contents.", "Copy files and directories, keeping their modes.", "how do I remove a file"]


def test_backend_is_in_the_config_and_its_fingerprint() -> None:
    assert RetrieveConfig().backend == "torch"
    prints = {fingerprint(RetrieveConfig(backend=b)) for b in BACKENDS}
    assert len(prints) == len(BACKENDS)  # every backend is another retrieve stage
    assert RetrieveConfig.model_validate(RetrieveConfig(backend="onnx").model_dump(mode="json")).backend == "onnx"
    with pytest.raises(ValueError, match="backend"):
        RetrieveConfig(backend="tensorrt")


def test_the_torch_backend_keeps_the_fingerprint_of_folders_written_before_backends_existed() -> None:
    from gecko_distill._io import fingerprinted

    before = {k: v for k, v in RetrieveConfig().model_dump(mode="json").items() if k != "backend"}
    assert fingerprinted(RetrieveConfig()) == before  # what the retrieve fingerprint hashed before
    assert fingerprinted(RetrieveConfig(backend="openvino"))["backend"] == "openvino"


@pytest.mark.parametrize("spelling", ["--embed-backend", "--retrieve.backend"])
def test_cli_option_parses_into_the_config(spelling: str) -> None:
    args = _parser().parse_args(["build-fret", "corpus.jsonl", "--out", "o", spelling, "onnx-int8"])
    config = fret_config(args)
    assert isinstance(config, FRetConfig) and config.retrieve.backend == "onnx-int8"
    assert fret_config(_parser().parse_args(["build-fret", "corpus.jsonl", "--out", "o"])).retrieve.backend == "torch"
    with pytest.raises(SystemExit):
        _parser().parse_args(["build-fret", "corpus.jsonl", "--out", "o", spelling, "cuda"])


def test_llm_dtype_option_parses_and_is_refused_for_an_api_teacher(capsys) -> None:
    from gecko_distill.cli import main

    args = _parser().parse_args(["build-fret", "corpus.jsonl", "--out", "o", "--llm-dtype", "float32"])
    assert args.llm_dtype == "float32"
    assert _parser().parse_args(["build-fret", "corpus.jsonl", "--out", "o"]).llm_dtype is None
    assert main(["build-fret", "corpus.jsonl", "--out", "o", "--llm", "gemini:gemini-2.5-flash", "--llm-dtype", "bfloat16"]) == 2
    assert "--llm-dtype bfloat16" in capsys.readouterr().err


def test_sentence_transformers_backend_changes_the_identity(embedder) -> None:
    """A model that sentence-transformers itself runs on ONNX is never taken for the torch one."""
    identity = embedder_identity(embedder)
    other = copy.deepcopy(embedder)
    other.backend = "onnx"
    assert embedder_identity(other) not in (None, identity)
    assert backend_of(embedder) == "torch"


def test_missing_runtime_names_the_extra(monkeypatch, embedder) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"gecko-distill\[openvino\]"):
        load_model(embedder, backend="openvino")
    assert backend_of(embedder) == "torch"  # the model passed in is never changed
    with pytest.raises(InputError, match="runs on the CPU"):
        load_model(None, backend="onnx", device="cuda")
    with pytest.raises(InputError, match="unknown embedding backend"):
        backend_available("tensorrt")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """One export of the offline MiniLM per module; ONNX Runtime and OpenVINO both read it."""
    return tmp_path_factory.mktemp("embedder_backends")


@pytest.fixture(scope="module")
def onnx_model(export_dir):
    if not HAS_ORT:
        pytest.skip("onnxruntime is not installed (pip install 'gecko-distill[onnx]')")
    return use_backend(load_model(device="cpu"), "onnx", export_dir=export_dir)


@needs_ort
def test_onnx_encodes_as_torch_does(onnx_model, embedder) -> None:
    expected = embedder.encode(SENTENCES, normalize_embeddings=True)
    got = onnx_model.encode(SENTENCES, normalize_embeddings=True)
    assert got.shape == expected.shape
    assert float((got * expected).sum(1).min()) > 0.9999
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert backend_of(onnx_model) == "onnx" and backend_of(embedder) == "torch"


@needs_ort
def test_backend_is_in_the_cache_key(onnx_model, embedder, tmp_path) -> None:
    torch_id, onnx_id = embedder_identity(embedder), embedder_identity(onnx_model)
    assert onnx_id == f"{torch_id}|backend=onnx"
    cache = EmbeddingCache(tmp_path)
    assert cache.path(torch_id) != cache.path(onnx_id)


@needs_ort
def test_retrieve_caches_each_backend_apart(onnx_model, embedder, tmp_path) -> None:
    passages = [Passage(id=str(i), text=t) for i, t in enumerate(SENTENCES)]
    query = GeneratedQuery(id="q", passage_id="0", task="find the command", query="show the files in a folder")
    cache = EmbeddingCache(tmp_path / "vectors")

    def run(backend):
        model = onnx_model if backend == "onnx" else embedder  # already on its backend: nothing is exported
        return retrieve([query], passages, model, RetrieveConfig(top_n=3, backend=backend), embedding_cache=cache)

    first = run("torch")
    again = run("onnx")
    assert again.stats["embed_backend"] == "onnx" and first.stats["embed_backend"] == "torch"
    assert again.stats["embedding_cache_hits"] == 0  # torch's vectors are not served to onnx
    assert [c.passage_id for c in again.records[0].candidates] == [c.passage_id for c in first.records[0].candidates]
    assert run("onnx").stats["embedding_cache_hits"] == len(passages) + 1


@needs_ort
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_openvino_and_int8_stay_close_to_torch(onnx_model, embedder, export_dir) -> None:
    """OpenVINO computes in bf16 on a CPU with AVX512-BF16 or AMX, and int8 rounds the weights:
    close to torch, not equal (bench/pipeline.py measures what that does to retrieval)."""
    expected = embedder.encode(SENTENCES, normalize_embeddings=True)
    for backend, floor in (("openvino", 0.999), ("onnx-int8", 0.98)):
        model = use_backend(load_model(device="cpu"), backend, export_dir=export_dir)
        assert [p.name for p in export_dir.rglob("model.onnx")] == ["model.onnx"]  # exported once, shared
        got = model.encode(SENTENCES, normalize_embeddings=True)
        assert float((got * expected).sum(1).min()) > floor, backend
        assert embedder_identity(model).endswith(f"|backend={backend}")


def test_llm_dtype_reaches_the_local_teacher(monkeypatch, tmp_path) -> None:
    """``--llm-dtype`` builds the default teacher lazily with that precision (nothing is loaded)."""
    import gecko_distill.fret.pipeline as pipeline
    from gecko_distill.cli.build_fret import build_fret_from_args
    from gecko_distill.llm.registry import LazyLLM

    seen = {}

    def fake_build_fret(corpus, *, llm, **kwargs):
        seen["llm"] = llm
        raise RuntimeError("stop")

    monkeypatch.setattr(pipeline, "build_fret", fake_build_fret)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "List directory contents."}\n', encoding="utf-8")
    args = _parser().parse_args(["build-fret", str(corpus), "--out", str(tmp_path / "o"), "--llm-dtype", "float32"])
    with pytest.raises(RuntimeError, match="stop"):
        build_fret_from_args(args, tmp_path / "o")
    assert isinstance(seen["llm"], LazyLLM) and seen["llm"]._options == {"dtype": "float32"}
