import copy
import hashlib

import numpy as np
import pytest
import torch

from gecko_distill import GeneratedQuery, Passage, RetrieveConfig, retrieve
from gecko_distill.embedder.embedding_cache import EmbeddingCache, embedder_identity
from gecko_distill.fret.index import (
    build_index,
    choose_index,
    exact_search,
    recall_at_k,
    search,
    tune_and_measure,
)


def clustered(n: int, dim: int = 16, clusters: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(clusters, size=n)] + 0.4 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class CountingEncoder:
    """A tiny deterministic embedder (hashed words) that records every text it encodes."""

    def __init__(self, name: str = "counting-v1", dim: int = 32):
        self.embedding_cache_id = name
        self.dim = dim
        self.encoded: list[str] = []

    def encode(self, texts, **kwargs):
        self.encoded.extend(texts)
        out = np.full((len(texts), self.dim), 1e-3, dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace("|", " ").split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def corpus(n: int = 120) -> tuple[list[GeneratedQuery], list[Passage]]:
    topics = ["gecko lizard climbs glass", "tax return due april", "python list comprehension", "rain forecast tomorrow"]
    passages = [Passage(id=f"p{i}", text=f"{topics[i % 4]} note {i} item{i % 7} extra{i % 11}") for i in range(n)]
    queries = [GeneratedQuery(id=f"p{i}#0", passage_id=f"p{i}", task="find it", query=topics[i % 4]) for i in range(0, n, 3)]
    return queries, passages


# -- index choice ---------------------------------------------------------------------------
def test_auto_is_flat_up_to_the_threshold_and_ivf_above():
    config = RetrieveConfig(exact_up_to=100)
    assert choose_index(100, config) == "flat" and choose_index(101, config) == "ivf"
    assert choose_index(10, RetrieveConfig(index="hnsw")) == "hnsw"
    assert choose_index(10**7, RetrieveConfig(index="flat")) == "flat"
    vectors = clustered(200)
    assert build_index(vectors, config)[1] == "IVF5,Flat"  # 200 // 39 caps 2·√200 ≈ 28 cells
    assert build_index(vectors, RetrieveConfig(index="hnsw", hnsw_m=8))[1] == "HNSW8,Flat"
    index, description = build_index(vectors, RetrieveConfig(exact_up_to=1000))
    assert description == "Flat" and index.ntotal == 200


def test_retrieve_reports_the_index_it_used():
    queries, passages = corpus()
    fake = CountingEncoder()
    exact = retrieve(queries, passages, fake, RetrieveConfig(top_n=5), embedding_cache=False)
    assert exact.stats["index"] == "Flat" and exact.stats["index_recall_at_n"] == 1.0
    approx = retrieve(queries, passages, fake, RetrieveConfig(top_n=5, exact_up_to=50, ivf_nlist=4), embedding_cache=False)
    assert approx.stats["index"].startswith("IVF4,Flat nprobe=")
    assert 0.0 <= approx.stats["index_recall_at_n"] <= 1.0 and approx.stats["index_recall_queries"] == 20
    for record in approx.records:  # the seed is still always a candidate, and no passage twice
        ids = [c.passage_id for c in record.candidates]
        assert record.query.passage_id in ids and len(set(ids)) == len(ids) == 5


def test_low_recall_is_a_warning(caplog):
    queries, passages = corpus()
    config = RetrieveConfig(top_n=5, index="ivf", ivf_nlist=8, ivf_nprobe=1)
    with caplog.at_level("INFO", logger="gecko_distill.fret.retrieve"):
        result = retrieve(queries, passages, CountingEncoder(), config, embedding_cache=False)
    recall = result.stats["index_recall_at_n"]
    [record] = [r for r in caplog.records if "against exact search" in r.message]
    assert record.levelname == ("WARNING" if recall < 0.9 else "INFO")


# -- recall ---------------------------------------------------------------------------------
def test_recall_at_k_by_hand():
    approx = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [9, 8, 7, 0]])
    exact = np.array([[4, 3, 2, 9], [5, 6, 7, 8], [0, 7, 8, 9]])
    assert recall_at_k(approx, exact) == pytest.approx((3 + 2 + 4) / 12)
    assert recall_at_k(exact, exact) == 1.0


def test_measured_recall_is_in_range_and_exact_with_every_cell_probed():
    vectors, queries = clustered(600), clustered(80, seed=1)
    config = RetrieveConfig(ivf_nlist=16, recall_queries=30)
    index, description = build_index(vectors, config, kind="ivf")
    tuned = tune_and_measure(index, description, vectors, queries, 10, config)
    assert 0.0 <= tuned.recall <= 1.0 and tuned.sample == 30 and tuned.tuned_on == 30
    assert tuned.description == f"IVF16,Flat nprobe={tuned.breadth}"
    everything = tune_and_measure(index, description, vectors, queries, 10, config.model_copy(update={"ivf_nprobe": 16}))
    assert everything.recall == 1.0 and everything.tuned_on == 0
    _, flat_ids = search(build_index(vectors, config, kind="flat")[0], queries, 10)
    assert recall_at_k(flat_ids, exact_search(queries, vectors, 10)[1]) == 1.0


def test_hnsw_is_tuned_and_measured_too():
    vectors, queries = clustered(400), clustered(40, seed=2)
    config = RetrieveConfig(index="hnsw", hnsw_m=8, recall_queries=20, target_recall=0.99)
    index, description = build_index(vectors, config)
    check = tune_and_measure(index, description, vectors, queries, 10, config)
    assert check.description.startswith("HNSW8,Flat efSearch=") and 0.0 <= check.recall <= 1.0


# -- chunked search -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_chunked_search_equals_one_search(kind):
    vectors, queries = clustered(500), clustered(37, seed=3)
    index, _ = build_index(vectors, RetrieveConfig(ivf_nlist=8, ivf_nprobe=3), kind=kind)
    whole_scores, whole_ids = index.search(queries, 7)
    scores, ids = search(index, queries, 7, chunk_size=5)
    np.testing.assert_array_equal(ids, whole_ids)
    np.testing.assert_array_equal(scores, whole_scores)


def test_chunked_exact_search_equals_the_flat_index():
    vectors, queries = clustered(500), clustered(37, seed=3)
    flat_scores, flat_ids = build_index(vectors, RetrieveConfig(), kind="flat")[0].search(queries, 7)
    scores, ids = exact_search(queries, vectors, 7, chunk_size=4)
    np.testing.assert_array_equal(ids, flat_ids)
    np.testing.assert_allclose(scores, flat_scores, rtol=1e-5)


# -- embedding cache ------------------------------------------------------------------------
def test_cache_answers_a_second_call_and_encodes_only_new_texts(tmp_path):
    cache, fake = EmbeddingCache(tmp_path), CountingEncoder()
    first = cache.embed("m1", ["a b", "c d", "a b"], fake.encode)
    assert fake.encoded == ["a b", "c d"] and (cache.hits, cache.misses) == (0, 3)
    again = cache.embed("m1", ["c d", "a b"], fake.encode)
    assert fake.encoded == ["a b", "c d"] and (cache.hits, cache.misses) == (2, 3)
    np.testing.assert_array_equal(again, first[[1, 0]])
    cache.embed("m1", ["a b", "c e"], fake.encode)  # a changed text misses
    assert fake.encoded[-1] == "c e" and len(fake.encoded) == 3
    cache.embed("m2", ["a b"], fake.encode)  # another model misses
    assert fake.encoded[-1] == "a b" and len(fake.encoded) == 4
    assert len(list(tmp_path.glob("*.sqlite"))) == 2


def test_retrieve_reuses_cached_embeddings(tmp_path):
    queries, passages = corpus(30)
    fake = CountingEncoder()
    first = retrieve(queries, passages, fake, RetrieveConfig(top_n=4), embedding_cache=tmp_path)
    # 30 passages and 10 queries, of which 4 distinct: a repeated text is encoded once
    assert len(fake.encoded) == 34 and first.stats["embedding_cache_misses"] == 40
    again = retrieve(queries, passages, fake, RetrieveConfig(top_n=4), embedding_cache=tmp_path)
    assert len(fake.encoded) == 34  # not called again
    assert again.stats["embedding_cache_hits"] == 40 and again.stats["embedding_cache_misses"] == 0
    assert again.records == first.records
    edited = [passages[0].model_copy(update={"text": "a new text"}), *passages[1:]]
    retrieve(queries, edited, fake, RetrieveConfig(top_n=4), embedding_cache=tmp_path)
    assert fake.encoded[34:] == ["a new text"]  # an untrained miner reads plain text
    renamed = CountingEncoder(name="counting-v2")
    retrieve(queries, passages, renamed, RetrieveConfig(top_n=4), embedding_cache=tmp_path)
    assert len(renamed.encoded) == 34  # another model identity: nothing reused


def test_retrieve_without_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path))
    queries, passages = corpus(12)
    result = retrieve(queries, passages, CountingEncoder(), RetrieveConfig(top_n=3), embedding_cache=False)
    assert result.stats["embedding_cache_hits"] == 0 and not (tmp_path / "embeddings").exists()
    retrieve(queries, passages, CountingEncoder(), RetrieveConfig(top_n=3))  # default: the user cache folder
    assert len(list((tmp_path / "embeddings").glob("counting-v1-*.sqlite"))) == 1


def test_embedder_identity_follows_weights_and_settings(embedder):
    identity = embedder_identity(embedder)
    assert identity == embedder_identity(embedder) and identity.startswith(str(embedder[0].auto_model.config._name_or_path))
    changed = copy.deepcopy(embedder)
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 0.01  # one weight of the word embeddings
    assert embedder_identity(changed) != identity
    changed = copy.deepcopy(embedder)
    changed.max_seq_length = 128
    assert embedder_identity(changed) != identity
    assert embedder_identity(object()) is None
