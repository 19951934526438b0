"""Prompts of the E5-mistral synthetic-data mode: the task taxonomy, brainstorm and triplet
prompts, their placeholders, and the pydantic schemas of the answers.

Adapted from Wang et al. (2024), "Improving Text Embeddings with Large Language Models",
appendix C. Each category has a brainstorm prompt (the LLM lists tasks as a JSON list) and a
triplet prompt (the LLM writes one example of a task as a JSON object). Placeholders (query
type, length, clarity, number of words, difficulty, language) are drawn with a seeded RNG, so
the data is diverse and reproducible. With ``few_shot=True`` every prompt also shows one
worked answer, which small models need to produce valid JSON at all.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Category",
    "CATEGORIES",
    "PLACEHOLDER_CHOICES",
    "RetrievalExample",
    "SimilarityExample",
    "ClassificationExample",
    "output_schema",
    "sample_placeholders",
    "brainstorm_prompt",
    "triplet_prompt",
    "demonstration_texts",
    "answer_prefix",
]

Category = Literal["short-long", "long-short", "short-short", "long-long", "sts", "bitext", "classification"]

#: Every category: four asymmetric retrieval shapes (query length - document length), two
#: symmetric ones (monolingual semantic similarity and bitext retrieval), and classification.
CATEGORIES: tuple[str, ...] = get_args(Category)

_ASYMMETRIC = ("short-long", "long-short", "short-short", "long-long")

#: The paper's placeholder values; ``num_words`` and the languages come from the config.
PLACEHOLDER_CHOICES: dict[str, tuple[str, ...]] = {
    "query_type": ("extremely long-tail", "long-tail", "common"),
    "query_length": ("less than 5 words", "5 to 15 words", "at least 10 words"),
    "clarity": ("clear", "understandable with some effort", "ambiguous"),
    "difficulty": ("high school", "college", "PhD"),
    "unit": ("sentence", "phrase", "passage"),
    "high_score": ("4", "4.5", "5"),
    "low_score": ("2.5", "3", "3.5"),
}

_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "short-long": ("query_type", "query_length", "clarity", "num_words", "difficulty", "language"),
    "long-short": ("query_type", "clarity", "num_words", "difficulty", "language"),
    "short-short": ("query_type", "query_length", "clarity", "difficulty", "language"),
    "long-long": ("query_type", "clarity", "num_words", "difficulty", "language"),
    "sts": ("unit", "high_score", "low_score", "difficulty", "language"),
    "bitext": ("unit", "high_score", "low_score", "difficulty", "source_language", "target_language"),
    "classification": ("clarity", "num_words", "difficulty", "language"),
}


# -- answer schemas ----------------------------------------------------------------------
class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, coerce_numbers_to_str=True)

    def texts(self) -> tuple[str, str, str]:
        """(query, positive, hard negative)."""
        a, b, c = (getattr(self, name) for name in type(self).model_fields)
        return a, b, c


class RetrievalExample(_Answer):
    """Answer of the asymmetric retrieval categories."""

    user_query: str = Field(min_length=1)
    positive_document: str = Field(min_length=1)
    hard_negative_document: str = Field(min_length=1)


class SimilarityExample(_Answer):
    """Answer of ``sts`` and ``bitext``: S1 is the query, S2 the positive, S3 the hard negative."""

    S1: str = Field(min_length=1)
    S2: str = Field(min_length=1)
    S3: str = Field(min_length=1)


class ClassificationExample(_Answer):
    """Answer of ``classification``: the input text is the query, the label the positive."""

    input_text: str = Field(min_length=1)
    label: str = Field(min_length=1)
    misleading_label: str = Field(min_length=1)


def output_schema(category: str) -> type[_Answer]:
    """The answer schema of a category.

    Example:
        >>> output_schema("bitext").__name__
        'SimilarityExample'
    """
    if category in _ASYMMETRIC:
        return RetrievalExample
    return ClassificationExample if category == "classification" else SimilarityExample


# -- placeholders ------------------------------------------------------------------------
def sample_placeholders(
    category: str, rng: random.Random, languages: Sequence[str], num_words: Sequence[int]
) -> dict[str, str]:
    """Draw the placeholders of one triplet prompt.

    Args:
        category: The task's category.
        rng: A seeded generator; the draw depends only on its state.
        languages: Languages to draw from (``bitext`` draws two different ones).
        num_words: Document lengths to draw from.

    Example:
        >>> p = sample_placeholders("short-long", random.Random(0), ["English"], [50, 100])
        >>> sorted(p), p == sample_placeholders("short-long", random.Random(0), ["English"], [50, 100])
        (['clarity', 'difficulty', 'language', 'num_words', 'query_length', 'query_type'], True)
    """
    values: dict[str, str] = {}
    for key in _PLACEHOLDERS[category]:
        if key == "num_words":
            values[key] = str(rng.choice(list(num_words)))
        elif key == "language":
            values[key] = rng.choice(list(languages))
        elif key == "source_language":
            values["source_language"], values["target_language"] = rng.sample(sorted(set(languages)), 2)
        elif key != "target_language":
            values[key] = rng.choice(PLACEHOLDER_CHOICES[key])
    return values


# -- brainstorm --------------------------------------------------------------------------
_BRAINSTORM: dict[str, tuple[str, tuple[str, str], str]] = {
    # category: (what to brainstorm, two reference tasks, extra guideline)
    "short-long": (
        "potentially useful text retrieval tasks",
        (
            "Provided a scientific claim as query, retrieve documents that help verify or refute the claim.",
            "Search for documents that answer a FAQ-style query on children's nutrition.",
        ),
        "Specify what the query is, and what the desired documents are.",
    ),
    "long-short": (
        "text retrieval tasks where the queries are long documents and the targets are short texts",
        (
            "Given a news article, retrieve its headline.",
            "Provided a long product review, retrieve the product features it complains about.",
        ),
        "Specify what the long query document is, and what the short targets are.",
    ),
    "short-short": (
        "text matching tasks where both the queries and the groundtruth documents are very short "
        "(one or two sentences, even a short phrase)",
        (
            "Given a scientific paper title, retrieve the titles of papers that cite it.",
            "Match a word with its definition.",
        ),
        "Specify what the query is, and what the desired documents are.",
    ),
    "long-long": (
        "text matching tasks where both the queries and the groundtruth documents are long documents",
        (
            "Given a document that supports a debatable argument, find another document that contains opposite arguments.",
            "Provided a lengthy business proposal, retrieve competitive business strategies in the same industry.",
        ),
        "Specify what the query document is, and what the desired documents are.",
    ),
    "sts": (
        "semantic textual similarity tasks, where the query and the target are texts of the same kind",
        (
            "Retrieve semantically similar text.",
            "Given a question asked on a forum, retrieve questions that ask the same thing.",
        ),
        "Specify what kind of text is compared, and what counts as similar.",
    ),
    "bitext": (
        "bitext retrieval tasks, where the target is a translation of the query into another language",
        (
            "Retrieve parallel sentences.",
            "Given a sentence from a news article, retrieve its translation.",
        ),
        "Do not name specific languages; the languages are chosen later.",
    ),
    "classification": (
        "potentially useful text classification tasks",
        (
            "Classify the sentiment of a product review as positive, negative or neutral.",
            "Given a news article, classify its topic as politics, sports, business or technology.",
        ),
        "Specify what the input text is, and what the possible labels are.",
    ),
}


def brainstorm_prompt(category: str, num_tasks: int, *, prime: bool = False) -> str:
    """The prompt that asks for a JSON list of ``num_tasks`` tasks of a category; ``prime``
    ends it with :func:`answer_prefix`.

    Example:
        >>> print(brainstorm_prompt("short-long", 5).splitlines()[0])
        Brainstorm a list of potentially useful text retrieval tasks.
    """
    what, examples, guideline = _BRAINSTORM[category]
    unit = "classification task" if category == "classification" else "task"
    return (
        f"Brainstorm a list of {what}.\n\n"
        f"Here are a few examples for your reference:\n{_json_list(examples)}\n\n"
        "Please adhere to the following guidelines:\n"
        f"- {guideline}\n"
        f"- Each {unit} should cover a wide range of inputs, and should not be too specific.\n\n"
        f"Your output must always be a JSON list of strings only, with about {num_tasks} elements, and each "
        f"element corresponds to a distinct {unit} in one sentence. Do not explain yourself or output anything "
        "else. Be creative!\n\nOutput:\n" + (answer_prefix(None) if prime else "")
    )


def answer_prefix(category: str | None) -> str:
    """The start of the answer written at the end of a primed prompt: ``["`` for a brainstorm
    (``category=None``), the opening of the first key's value for a triplet. Small base
    models follow the format far more often when their answer is started for them.

    Example:
        >>> answer_prefix(None), answer_prefix("sts")
        ('["', '{"S1": "')
    """
    if category is None:
        return '["'
    return '{"' + next(iter(output_schema(category).model_fields)) + '": "'


def demonstration_texts(category: str) -> tuple[str, ...]:
    """The reference tasks and the worked answer's texts shown in a category's prompts, so
    that an answer copying them can be recognised.

    Example:
        >>> "Match a word with its definition." in demonstration_texts("short-short")
        True
    """
    _, examples, _ = _BRAINSTORM[category]
    _, answer = _DEMONSTRATIONS[category]
    return (*examples, *answer.texts())


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items), ensure_ascii=False)


# -- triplets ----------------------------------------------------------------------------
_QUERY_SPEC = {
    "short-long": "{query_type}, {query_length}, {clarity}",
    "short-short": "{query_type}, {query_length}, {clarity}",
    "long-short": "{query_type}, at least {num_words} words long, {clarity}",
    "long-long": "{query_type}, at least {num_words} words long, {clarity}",
}
_DOCUMENT_SPEC = {
    "short-long": "at least {num_words} words long",
    "long-long": "at least {num_words} words long",
    "short-short": "short: a phrase, or one or two sentences",
    "long-short": "short: a phrase, or one or two sentences",
}

_RETRIEVAL = (
    "You have been assigned a retrieval task: {task}\n"
    "Your mission is to write one text retrieval example for this task in JSON format. The JSON object must "
    "contain the following keys:\n"
    '- "user_query": a string, a random user search query specified by the retrieval task.\n'
    '- "positive_document": a string, a relevant document for the user query.\n'
    '- "hard_negative_document": a string, a hard negative document that only appears relevant to the query.\n\n'
    "Please adhere to the following guidelines:\n"
    '- The "user_query" should be {query_spec}, and diverse in topic.\n'
    "- All documents must be created independent of the query. Avoid copying the query verbatim. It's acceptable "
    'if some parts of the "positive_document" are not topically related to the query.\n'
    "- All documents should be {document_spec}.\n"
    '- The "hard_negative_document" contains some useful information, but it should be less useful or '
    'comprehensive compared to the "positive_document".\n'
    "- Both the query and documents should be in {language}.\n"
    "- Do not provide any explanation in any document on why it is relevant or not relevant to the query.\n"
    "- Both the query and documents require {difficulty} level education to understand.\n\n"
    "Your output must always be a JSON object only, do not explain yourself or output anything else. Be creative!"
)

_STS = (
    "You have been assigned a semantic similarity task: {task}\n"
    "Your mission is to write a {unit} triple with varying semantic similarity scores in JSON format. The "
    "semantic similarity score ranges from 1 to 5, with 1 denotes least similar and 5 denotes most similar.\n\n"
    "Please adhere to the following guidelines:\n"
    '- The keys in JSON are "S1", "S2", and "S3", the values are all strings in {language}, do not add any other keys.\n'
    "- There should be some word overlaps between all three {unit}s.\n"
    "- The similarity score between S1 and S2 should be {high_score}.\n"
    "- The similarity score between S1 and S3 should be {low_score}.\n"
    "- The {unit}s require {difficulty} level education to understand and should be diverse in terms of topic "
    "and length.\n\n"
    'Your output must always be a JSON object only with three keys "S1", "S2" and "S3", do not explain yourself '
    "or output anything else. Be creative!"
)

_BITEXT = (
    "You have been assigned a bitext retrieval task: {task}\n"
    "Your mission is to write a {unit} triple with one {unit} in {source_language} and two {unit}s in "
    '{target_language} with varying translation qualities in JSON format. The triple is denoted as ("S1", "S2", '
    '"S3"). The translation quality score ranges from 1 to 5, with higher scores are better.\n\n'
    "Please adhere to the following guidelines:\n"
    '- The value of "S1" is a string in {source_language}, the values of "S2" and "S3" are strings in '
    "{target_language}.\n"
    '- There should be some word overlaps between "S2" and "S3".\n'
    '- The translation quality score of "S2" with respect to "S1" should be {high_score}.\n'
    '- The translation quality score of "S3" with respect to "S1" should be {low_score}.\n'
    '- "S3" should be grammatical and fluent, but contain some keyword or number translation errors, or miss some '
    "information, or contain some redundant information.\n"
    '- "S1" requires {difficulty} level education to understand and should be diverse in terms of topic and length.\n\n'
    'Your output must always be a JSON object only with three keys "S1", "S2" and "S3", do not explain yourself '
    "or output anything else. Be creative!"
)

_CLASSIFICATION = (
    "You have been assigned a text classification task: {task}\n"
    "Your mission is to write one text classification example for this task in JSON format. The JSON object "
    "must contain the following keys:\n"
    '- "input_text": a string, the input text specified by the classification task.\n'
    '- "label": a string, the correct label of the input text.\n'
    '- "misleading_label": a string, an incorrect label that is related to the task.\n\n'
    "Please adhere to the following guidelines:\n"
    '- The "input_text" should be at least {num_words} words and diverse in expression.\n'
    '- The "misleading_label" must be a valid label for the given task, but not as appropriate as the "label" '
    'for the "input_text".\n'
    "- The values for all fields should be in {language}.\n"
    "- Avoid including the values of the \"label\" and \"misleading_label\" fields in the \"input_text\", that "
    "would make the task too easy.\n"
    '- The "input_text" is {clarity} and requires {difficulty} level education to comprehend.\n\n'
    "Your output must always be a JSON object only, do not explain yourself or output anything else. Be creative!"
)

_DEMONSTRATIONS: dict[str, tuple[str, _Answer]] = {
    "short-long": (
        "Given a home-repair question, retrieve guides that answer it.",
        RetrievalExample(
            user_query="fix squeaky door hinge",
            positive_document="A squeaky hinge needs lubrication. Lift the pin out of the hinge, wipe it clean, "
            "coat it with petroleum jelly or silicone spray and tap it back in. Swing the door a few times.",
            hard_negative_document="Door hinges come in many styles, from butt hinges to concealed European "
            "hinges, made of brass, steel or stainless steel, and should match the other hardware of a room.",
        ),
    ),
    "long-short": (
        "Given a recipe, retrieve its title.",
        RetrievalExample(
            user_query="Whisk two eggs with a splash of milk and a pinch of salt. Melt butter in a pan over low "
            "heat, pour in the eggs and stir slowly with a spatula until they are just set and creamy.",
            positive_document="Creamy scrambled eggs",
            hard_negative_document="Classic French omelette",
        ),
    ),
    "short-short": (
        "Match a word with its definition.",
        RetrievalExample(
            user_query="ephemeral",
            positive_document="Lasting for a very short time.",
            hard_negative_document="Lasting forever or for a very long time.",
        ),
    ),
    "long-long": (
        "Given a paper abstract, retrieve abstracts of papers on the same problem.",
        RetrievalExample(
            user_query="We study how coral reefs recover after bleaching events. Surveying 40 reefs over ten years, "
            "we find that recovery depends mostly on water quality and the abundance of herbivorous fish.",
            positive_document="Marine heatwaves bleach corals worldwide. We tracked reef recovery after the 2016 "
            "heatwave and show that reefs with low nutrient pollution and many grazing fish regrow fastest.",
            hard_negative_document="Coral reefs host a quarter of marine species. We catalogue the fish of three "
            "Pacific reefs and describe how their communities change between the wet and the dry season.",
        ),
    ),
    "sts": (
        "Retrieve semantically similar text.",
        SimilarityExample(
            S1="The cat is sleeping on the warm windowsill.",
            S2="A cat naps on the sunny window ledge.",
            S3="The cat is sitting near the window, watching birds.",
        ),
    ),
    "bitext": (
        "Retrieve parallel sentences.",
        SimilarityExample(
            S1="The museum opens at nine o'clock every morning.",
            S2="Le musée ouvre à neuf heures tous les matins.",
            S3="Le musée ouvre à dix heures le matin.",
        ),
    ),
    "classification": (
        "Classify the sentiment of a product review as positive, negative or neutral.",
        ClassificationExample(
            input_text="The battery lasts two full days and the screen is sharp, though the case scratches easily.",
            label="positive",
            misleading_label="neutral",
        ),
    ),
}


def triplet_prompt(category: str, task: str, placeholders: dict[str, str], *, few_shot: bool = True) -> str:
    """The prompt that asks for one example of ``task`` as a JSON object.

    Args:
        category: The task's category.
        task: The task description.
        placeholders: From :func:`sample_placeholders`.
        few_shot: Show a worked answer for another task of the same category, and start the
            answer (:func:`answer_prefix`).

    Example:
        >>> p = sample_placeholders("sts", random.Random(0), ["English"], [50])
        >>> prompt = triplet_prompt("sts", "Retrieve similar questions.", p)
        >>> prompt.startswith("You have been assigned a semantic similarity task: Retrieve similar questions.")
        True
    """
    if category in _ASYMMETRIC:
        template = _RETRIEVAL.replace("{query_spec}", _QUERY_SPEC[category])
        template = template.replace("{document_spec}", _DOCUMENT_SPEC[category])
    else:
        template = {"sts": _STS, "bitext": _BITEXT, "classification": _CLASSIFICATION}[category]
    prompt = template.format(task=task, **placeholders)
    if few_shot:
        demo_task, answer = _DEMONSTRATIONS[category]
        demo = json.dumps(answer.model_dump(), ensure_ascii=False)
        prompt += f'\n\nHere is an example answer for another task ("{demo_task}"):\n{demo}'
    return prompt + "\n\nOutput:\n" + (answer_prefix(category) if few_shot else "")
