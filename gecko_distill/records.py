"""Typed records that flow between the stages; they are also the jsonl schema on disk.

Every record is a pydantic model with ``extra="forbid"``, so a misspelt or stale field in a
file is an error, never silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Record",
    "Passage",
    "GeneratedQuery",
    "Candidate",
    "RankedCandidates",
    "FRetExample",
    "Skip",
]


class Record(BaseModel):
    """Base class: strict, immutable records."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Passage(Record):
    """A passage of the unlabelled corpus.

    Attributes:
        id: Unique id within the corpus.
        text: The passage text (non-empty).
        title: Optional title, used in the document format ``title: {title} | text: {text}``.
    """

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    title: str = ""

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("passage text is empty or whitespace")
        return value


class GeneratedQuery(Record):
    """Output of the ``generate`` stage: one task and query written for a seed passage.

    Attributes:
        id: Query id, ``{passage_id}#{sample_index}``.
        passage_id: Id of the seed passage the query was written for.
        task: Natural-language task description, e.g. "Given a question, retrieve passages that
            answer it".
        query: The query text.
        sample_index: Which of the passage's samples this is (0 for the first).
    """

    id: str
    passage_id: str
    task: str
    query: str
    sample_index: int = 0


class Candidate(Record):
    """One retrieved candidate for a query, with the teacher's scores once relabelled.

    Attributes:
        passage_id: Id of the candidate passage.
        retrieval_score: Cosine similarity from the embedder.
        ql: Length-normalised query log-likelihood, log P(query | passage) / |query|.
        rc: Relevance log-odds, log P(yes) - log P(no).
        ql_rank: 1-based rank by ``ql`` (ties share the best rank).
        rc_rank: 1-based rank by ``rc``.
        fused_score: Reciprocal-rank fusion, 1/ql_rank + 1/rc_rank.
        fused_rank: 1-based rank by ``fused_score``.
    """

    passage_id: str
    retrieval_score: float
    ql: float | None = None
    rc: float | None = None
    ql_rank: int | None = None
    rc_rank: int | None = None
    fused_score: float | None = None
    fused_rank: int | None = None


class RankedCandidates(Record):
    """Candidates for one query: the output of ``retrieve`` (unscored) and ``relabel`` (scored).

    Attributes:
        query: The generated query.
        candidates: Candidates in retrieval order (``retrieve``) or fused-rank order (``relabel``).
    """

    query: GeneratedQuery
    candidates: list[Candidate]

    @property
    def id(self) -> str:
        return self.query.id


class FRetExample(Record):
    """One FRet training example: a task, a query, a relabelled positive and a hard negative.

    Attributes:
        id: Example id (the query id).
        task: Task description.
        query: Query text.
        positive: The fused top-1 candidate.
        negative: The hard negative (last-ranked or random, per ``RelabelConfig``).
        seed_passage_id: The passage the query was generated from.
        positive_is_seed: Whether relabelling kept the seed passage as the positive.
        positive_ranks: ``{"ql": r, "rc": r, "fused": r}`` of the positive, for provenance.
        negative_ranks: The same for the negative.
    """

    id: str
    task: str
    query: str
    positive: Passage
    negative: Passage
    seed_passage_id: str
    positive_is_seed: bool
    positive_ranks: dict[str, int]
    negative_ranks: dict[str, int]


class Skip(Record):
    """A counted, logged skip: an item a stage dropped, and why.

    Attributes:
        stage: The stage that skipped it.
        item_id: The passage or query id.
        reason: A short machine-readable reason, e.g. ``"copy_of_passage"``.
        detail: Human-readable detail (e.g. the offending output, truncated).
    """

    stage: str
    item_id: str
    reason: str
    detail: str = ""
