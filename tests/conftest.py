"""Shared fixtures: real text, the offline embedder and teacher (loaded once per session)."""

from __future__ import annotations

import pytest

from gecko_distill import Passage
from gecko_distill.corpus import python_docs_passages


@pytest.fixture(scope="session")
def pydoc_passages() -> list[Passage]:
    """Real English passages from the standard library's ``pydoc_data.topics``."""
    return python_docs_passages()


@pytest.fixture(scope="session")
def embedder():
    """The offline default embedder (all-MiniLM-L6-v2), loaded once."""
    from gecko_distill.embedder.encoding import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def real_llm():
    """The offline default teacher, gemma-3-270m (dequantised once into the user cache)."""
    from gecko_distill import get_llm

    return get_llm("gemma3-270m")


@pytest.fixture(scope="session")
def real_llm_fp32():
    """The offline teacher in fp32, for tests of exact invariances (batching, padding, shared
    prefixes): in bf16 two batch shapes differ by rounding (about 1e-3 in a log-probability)."""
    from gecko_distill import get_llm

    return get_llm("gemma3-270m", dtype="float32")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on this busy 2-core machine a training step is several times slower with two threads that wait
    for each other. Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
