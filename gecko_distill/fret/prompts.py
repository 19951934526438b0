"""Prompt templates of the LLM-facing stages, and the few-shot pool of task types.

The prompts are plain-text completions (no chat template) so that base models such as
gemma-3-270m can follow them as well as instruction-tuned ones.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict

from .._io import fingerprint
from ..text import LANGUAGES, detection_rules

__all__ = [
    "FewShotExample",
    "FEW_SHOT_POOL",
    "generation_prompt",
    "generation_prompt_id",
    "ScoringDemo",
    "ql_context",
    "rc_question",
    "rc_context",
    "RC_CHOICES",
    "GENERATION_PROMPT_ID",
    "SCORING_PROMPT_ID",
]


class FewShotExample(BaseModel):
    """One demonstration: a passage with the task and query written for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_type: str
    passage: str
    task: str
    query: str


#: Demonstrations covering ten task types; each prompt shows a seeded sample of them.
FEW_SHOT_POOL: tuple[FewShotExample, ...] = (
    FewShotExample(
        task_type="question answering",
        passage="The Great Barrier Reef, off the coast of Queensland, is the world's largest coral reef system, "
        "made of over 2,900 individual reefs stretching for 2,300 kilometres.",
        task="Given a question, retrieve passages that answer the question",
        query="how long is the great barrier reef",
    ),
    FewShotExample(
        task_type="fact checking",
        passage="Marie Curie was the first woman to win a Nobel Prize, and remains the only person to win Nobel "
        "Prizes in two different sciences, physics in 1903 and chemistry in 1911.",
        task="Given a claim, retrieve documents that support or refute the claim",
        query="Marie Curie won a Nobel Prize in biology",
    ),
    FewShotExample(
        task_type="web search",
        passage="To reset a forgotten router password, hold the reset button on the back of the device for ten "
        "seconds; it restores the factory settings, including the default admin login.",
        task="Given a web search query, retrieve relevant passages that answer the query",
        query="forgot router admin password reset",
    ),
    FewShotExample(
        task_type="keyword search",
        passage="The rsync utility synchronises files between two locations, sending only the differences, and "
        "can preserve permissions, timestamps and symbolic links over SSH.",
        task="Given keywords, retrieve documents that contain information about them",
        query="rsync incremental copy ssh permissions",
    ),
    FewShotExample(
        task_type="sentence similarity",
        passage="Regular physical exercise lowers the risk of heart disease and improves mood and sleep.",
        task="Retrieve sentences that are semantically similar to the given sentence",
        query="Working out often is good for your heart, your mood and your sleep.",
    ),
    FewShotExample(
        task_type="summary search",
        passage="The committee reviewed three proposals for the new library. After weighing cost, location and "
        "accessibility, it chose the riverside site, which is cheapest and closest to public transport.",
        task="Given a summary, retrieve the document that it summarizes",
        query="committee picks cheap, accessible riverside site for the new library",
    ),
    FewShotExample(
        task_type="how-to",
        passage="In Python, a list can be sorted in place with list.sort(); sorted() returns a new list. Both "
        "accept a key function and reverse=True for descending order.",
        task="Given a how-to question, retrieve the passage that explains how to do it",
        query="how to sort a python list in descending order",
    ),
    FewShotExample(
        task_type="definition",
        passage="Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to "
        "produce glucose and release oxygen.",
        task="Given a term, retrieve the passage that defines it",
        query="photosynthesis",
    ),
    FewShotExample(
        task_type="title search",
        passage="Rising sea temperatures are pushing many fish species toward the poles, forcing fishing fleets "
        "to travel further and changing which species reach local markets.",
        task="Given a headline, retrieve the news article it belongs to",
        query="Warming oceans drive fish toward the poles",
    ),
    FewShotExample(
        task_type="tool description",
        passage="VLOOKUP searches the first column of a table for a value and returns the value in the same row "
        "from a column that you choose.",
        task="Given a description of what a spreadsheet function does, retrieve the documentation of that function",
        query="look up a key in a table and return another column of its row",
    ),
)

_GENERATION_HEADER = (
    "For each passage, write a retrieval task and a query. The passage must answer the query, "
    "but the query must not copy the passage.\n\n"
)


def _block(passage: str, task: str = "", query: str = "") -> str:
    if not task:
        return f"Passage: {passage}\nTask:"
    return f"Passage: {passage}\nTask: {task}\nQuery: {query}\n\n"


def _language_parts(name: str) -> tuple[str, str]:
    """The header and the line before the seed passage that ask for the task and the query in
    another language than English. The demonstrations stay English (Gecko's multilingual FRet
    keeps its prompt and names the passage's language); the line repeats the request next to
    the passage, where a small model heeds it more than at the top."""
    header = _GENERATION_HEADER.rstrip("\n") + f" Write the task and the query in {name}.\n\n"
    return header, f"Write the task and the query for this passage in {name}.\n"


def generation_prompt(passage: str, rng: random.Random, num_examples: int, language: str = "en") -> str:
    """The few-shot prompt for one seed passage; ``rng`` picks and orders the examples.

    Args:
        passage: The seed passage (already cut to the word budget).
        rng: Picks and orders the demonstrations.
        num_examples: How many demonstrations.
        language: The language the task and query are asked in, a code of
            :data:`~gecko_distill.text.LANGUAGES`; ``"en"`` (and ``"any"``) give the English
            prompt, byte for byte what it was before other languages could be asked for, and
            any other names the language in the instruction.

    Example:
        >>> prompt = generation_prompt("Geckos can climb glass.", random.Random(0), num_examples=2)
        >>> prompt.endswith("Passage: Geckos can climb glass.\\nTask:")
        True
        >>> prompt = generation_prompt("壁虎能爬玻璃。", random.Random(0), num_examples=1, language="zh")
        >>> print(prompt.split("\\n")[0])
        For each passage, write a retrieval task and a query. The passage must answer the query, but the query must not copy the passage. Write the task and the query in Chinese.
        >>> print(prompt[prompt.rindex("Query:"):])
        Query: how to sort a python list in descending order
        <BLANKLINE>
        Write the task and the query for this passage in Chinese.
        Passage: 壁虎能爬玻璃。
        Task:
    """
    examples = rng.sample(FEW_SHOT_POOL, k=min(num_examples, len(FEW_SHOT_POOL)))
    shots = "".join(_block(e.passage, e.task, e.query) for e in examples)
    if language in ("en", "any"):
        return _GENERATION_HEADER + shots + _block(passage)
    header, line = _language_parts(LANGUAGES[language].name)
    return header + shots + line + _block(passage)


#: The relevance-classification answers whose log-odds give the RC score.
RC_CHOICES = (" Yes", " No")

_SCORING_HEADER = "Read the passage, then write a search query that the passage answers.\n\n"


class ScoringDemo(BaseModel):
    """One demonstration for the relabelling prompts, taken from the run's own data: a
    generated query with its seed passage (relevant) and a random passage (irrelevant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    query: str
    relevant: str
    irrelevant: str


def ql_context(passage: str, task: str, demos: tuple[ScoringDemo, ...] = (), *, answered: bool = False) -> str:
    """Context for query likelihood: log P(query | this context).

    Args:
        passage: The candidate passage.
        task: The query's task.
        demos: Demonstrations shown first (Gecko's prompts are few-shot). Each shows its
            relevant passage followed by its query; with ``answered`` (the fused prompt, which
            asks the relevance question after the query), each also shows its irrelevant
            passage with the same query, and the answers to the relevance question.
        answered: Show the relevance question and its answer after each demonstration.

    Example:
        >>> demo = ScoringDemo(task="find the command", query="copy files", relevant="cp copies files",
        ...                    irrelevant="ls lists files")
        >>> print(ql_context("rm removes files", "find the command", (demo,)))
        Read the passage, then write a search query that the passage answers.
        <BLANKLINE>
        Passage: cp copies files
        Task: find the command
        Query: copy files
        <BLANKLINE>
        Passage: rm removes files
        Task: find the command
        Query:
    """
    shots = "".join(_ql_demo(d, answered) for d in demos)
    return f"{_SCORING_HEADER}{shots}Passage: {passage}\nTask: {task}\nQuery:"


def _ql_demo(demo: ScoringDemo, answered: bool) -> str:
    if not answered:
        return f"Passage: {demo.relevant}\nTask: {demo.task}\nQuery: {demo.query}\n\n"
    return "".join(
        f"Passage: {passage}\nTask: {demo.task}\nQuery: {demo.query}{rc_question()} {answer}\n\n"
        for passage, answer in ((demo.irrelevant, "No"), (demo.relevant, "Yes"))
    )


def rc_question() -> str:
    """The relevance question, asked after the passage and the query."""
    return "\nDoes the passage answer the query? Answer Yes or No.\nAnswer:"


def rc_context(passage: str, task: str, query: str, demos: tuple[ScoringDemo, ...] = ()) -> str:
    """The separate relevance prompt of the paper: query first, then the passage, then the
    question; each demonstration shows its query with the irrelevant and the relevant passage,
    answered.

    Example:
        >>> demo = ScoringDemo(task="t", query="copy files", relevant="cp copies files", irrelevant="ls lists files")
        >>> rc_context("rm removes files", "t", "delete files", (demo,)).count("Answer: No")
        1
    """
    shots = "".join(
        f"Task: {demo.task}\nQuery: {demo.query}\nPassage: {text}{rc_question()} {answer}\n\n"
        for demo in demos
        for text, answer in ((demo.irrelevant, "No"), (demo.relevant, "Yes"))
    )
    return f"{shots}Task: {task}\nQuery: {query}\nPassage: {passage}{rc_question()}"


#: Identity of the generation prompt (header, layout, few-shot pool). It is part of the
#: ``generate`` stage fingerprint, so editing the prompt makes saved output stale instead of
#: silently reusing queries written with the old one.
GENERATION_PROMPT_ID = fingerprint(
    _GENERATION_HEADER, _block("{passage}", "{task}", "{query}"), _block("{passage}"), FEW_SHOT_POOL
)


def generation_prompt_id(language: str = "en") -> str:
    """Identity of the generation prompts for a ``GenerateConfig.language`` setting; part of the
    ``generate`` stage fingerprint. English (and ``"any"``) keep :data:`GENERATION_PROMPT_ID`, so
    folders built before other languages could be asked for stay valid; another language adds
    its instruction, and ``"auto"`` the instruction and the rules that tell each passage's
    language (:func:`~gecko_distill.text.detection_rules`).

    Example:
        >>> generation_prompt_id("en") == GENERATION_PROMPT_ID != generation_prompt_id("de") != generation_prompt_id("auto")
        True
    """
    if language in ("en", "any"):
        return GENERATION_PROMPT_ID
    if language == "auto":
        return fingerprint(GENERATION_PROMPT_ID, _language_parts("{language}"), detection_rules())
    return fingerprint(GENERATION_PROMPT_ID, _language_parts(LANGUAGES[language].name))


#: Identity of the relabelling prompts (query likelihood, relevance question and answers); part
#: of the ``relabel`` stage fingerprint.
_DEMO = ScoringDemo(task="{demo_task}", query="{demo_query}", relevant="{relevant}", irrelevant="{irrelevant}")
SCORING_PROMPT_ID = fingerprint(
    ql_context("{passage}", "{task}"),
    rc_context("{passage}", "{task}", "{query}"),
    RC_CHOICES,
    ql_context("{passage}", "{task}", (_DEMO,)),
    ql_context("{passage}", "{task}", (_DEMO,), answered=True),
    rc_context("{passage}", "{task}", "{query}", (_DEMO,)),
)
