import pytest

from gecko_distill import GeneratedQuery, InputError, Passage, RetrieveConfig, retrieve


@pytest.fixture(autouse=True)
def _private_embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GECKO_DISTILL_CACHE", str(tmp_path / "cache"))


def q(pid: str, text: str, task: str = "Given a question, retrieve passages that answer it") -> GeneratedQuery:
    return GeneratedQuery(id=f"{pid}#0", passage_id=pid, task=task, query=text)


def test_top_n_neighbours_are_relevant_and_seed_is_always_included(pydoc_passages, embedder):
    passages = pydoc_passages[80:140]
    # a query about one passage, whose seed is deliberately an unrelated passage
    target = next(p for p in passages if "lambda" in p.text)
    unrelated = next(p for p in passages if "lambda" not in p.text and "function" not in p.text)
    queries = [
        q(target.id, "anonymous functions with lambda expressions"),
        q(unrelated.id, "anonymous functions with lambda expressions"),
    ]
    queries[1] = queries[1].model_copy(update={"id": "other#0"})
    result = retrieve(queries, passages, embedder, RetrieveConfig(top_n=5))
    first, second = result.records
    assert len(first.candidates) == len(second.candidates) == 5
    assert first.candidates[0].passage_id == target.id
    assert second.candidates[-1].passage_id == unrelated.id  # forced in as the N-th candidate
    scores = [c.retrieval_score for c in first.candidates]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0001
    assert result.stats["seed_in_top_n"] == 0.5 and result.stats["passages_indexed"] == 60


def test_duplicate_passages_are_never_candidates_twice(embedder):
    passages = [
        Passage(id="a", text="Geckos climb glass."),
        Passage(id="a2", text="geckos  climb glass."),
        Passage(id="b", text="Lizards bask in the sun."),
        Passage(id="c", text="Taxes are due in April."),
    ]
    result = retrieve([q("a2", "can geckos climb glass")], passages, embedder, RetrieveConfig(top_n=3))
    ids = [c.passage_id for c in result.records[0].candidates]
    assert ids[0] == "a" and "a2" not in ids and len(set(ids)) == 3


def test_top_n_is_capped_by_the_corpus(embedder):
    passages = [Passage(id=str(i), text=t) for i, t in enumerate(["one thing", "another thing", "third thing"])]
    result = retrieve([q("0", "a thing")], passages, embedder, RetrieveConfig(top_n=20))
    assert len(result.records[0].candidates) == 3 and result.stats["top_n"] == 3


def test_unknown_seed_passage_is_an_input_error(embedder):
    with pytest.raises(InputError, match="query 'missing#0': its seed passage 'missing' is not in the corpus"):
        retrieve([q("missing", "x y")], [Passage(id="a", text="text")], embedder)


def test_passages_longer_than_the_embedder_limit_are_counted(embedder):
    passages = [Passage(id="long", text="word " * 600), Passage(id="s1", text="short one"), Passage(id="s2", text="short two")]
    result = retrieve([q("s1", "short")], passages, embedder, RetrieveConfig(top_n=3))
    assert result.stats["passages_truncated_by_embedder"] == 1


def test_a_rerun_reads_every_embedding_from_the_cache(pydoc_passages, embedder, tmp_path):
    passages = pydoc_passages[80:110]
    queries = [q(p.id, " ".join(p.text.split()[:6])) for p in passages[:10]]
    first = retrieve(queries, passages, embedder, RetrieveConfig(top_n=4))
    assert (first.stats["embedding_cache_hits"], first.stats["embedding_cache_misses"]) == (0, 40)
    again = retrieve(queries, passages, embedder, RetrieveConfig(top_n=4))
    assert (again.stats["embedding_cache_hits"], again.stats["embedding_cache_misses"]) == (40, 0)
    assert again.records == first.records
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.sqlite"))) == 1


def test_approximate_index_keeps_the_seed_and_reports_recall(pydoc_passages, embedder):
    passages = pydoc_passages[100:170]
    queries = [q(p.id, " ".join(p.text.split()[:6])) for p in passages[::4]]
    config = RetrieveConfig(top_n=5, exact_up_to=40, ivf_nlist=4)
    result = retrieve(queries, passages, embedder, config)
    assert result.stats["index"].startswith("IVF4,Flat nprobe=") and 0 <= result.stats["index_recall_at_n"] <= 1
    first = {}  # a seed whose text repeats an earlier passage is stood in for by that one
    stand_in = {p.id: first.setdefault(" ".join(p.text.split()).lower(), p.id) for p in passages}
    assert any(k != v for k, v in stand_in.items() if k in {q.passage_id for q in queries})
    for record in result.records:
        ids = [c.passage_id for c in record.candidates]
        assert stand_in[record.query.passage_id] in ids and len(ids) == len(set(ids)) == 5


def test_a_hub_id_embedder_is_downloaded_unless_offline(tmp_path, monkeypatch):
    import huggingface_hub

    from gecko_distill.errors import InputError
    from gecko_distill.fret.retrieve import embedder_name

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    calls = []

    def snapshot_download(repo, local_files_only=False):
        calls.append((repo, local_files_only))
        if local_files_only or repo != "acme/embedder":
            raise OSError("not cached")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert embedder_name("acme/embedder").startswith(str(tmp_path.resolve()))
    assert ("acme/embedder", False) in calls
    calls.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="acme/embedder: embedder not found"):
        embedder_name("acme/embedder")
    assert all(local for _, local in calls)  # offline: the cache only
