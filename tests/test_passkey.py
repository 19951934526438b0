"""bench/passkey.py: documents of exact token lengths, reproducible, and solvable when short."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

from gecko_distill.paths import default_embedder_path


@pytest.fixture(scope="module")
def passkey():
    path = Path(__file__).resolve().parents[1] / "bench" / "passkey.py"
    spec = importlib.util.spec_from_file_location("passkey_bench", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_embedder_path())


@pytest.mark.parametrize("length", [48, 128, 400])
def test_documents_have_the_asked_length_and_one_key(passkey, tokenizer, length: int) -> None:
    docs = passkey.make_documents(tokenizer, length, 12, random.Random(0))
    assert len({d.name for d in docs}) == 12 and len({d.passkey for d in docs}) > 1
    for doc in docs:
        n = len(tokenizer(doc.text, add_special_tokens=False).input_ids)
        assert length - 2 <= n <= length
        assert doc.text.count(f"{doc.name}'s pass key is {doc.passkey}.") == 1
        prefix = doc.text.split(f" is the pass key of {doc.name}")[0]
        assert abs(len(tokenizer(prefix, add_special_tokens=False).input_ids) - doc.key_end_token) <= 12
    positions = {d.key_end_token for d in docs}
    assert len(positions) > 3  # the key moves around


def test_documents_are_reproducible_under_a_seed(passkey, tokenizer) -> None:
    first = passkey.make_documents(tokenizer, 96, 5, random.Random("7:96"))
    again = passkey.make_documents(tokenizer, 96, 5, random.Random("7:96"))
    other = passkey.make_documents(tokenizer, 96, 5, random.Random("8:96"))
    assert first == again and first != other


def test_short_documents_are_retrieved(passkey, tokenizer, embedder) -> None:
    docs = passkey.make_documents(tokenizer, 48, 8, random.Random(0))
    assert passkey.accuracy(embedder, docs, "plain", batch_size=8) >= 0.75
