"""Prompts of the E5-mistral synthetic-data mode: the task taxonomy, brainstorm and triplet
prompts, their placeholders, and the pydantic schemas of the answers.

Adapted from Wang et al. (2024), "Improving Text Embeddings with Large Language Models",
appendix C. Each category has a brainstorm prompt (the LLM lists tasks as a JSON list) and a
triplet prompt (the LLM writes one example of a task as a JSON object). Placeholders (query
type, length, clarity, number of words, difficulty, language) are drawn with a seeded RNG, so
the data is diverse and reproducible.

Two prompt styles:

* ``"instructions"``: the paper's prompts, written for an instruction-following LLM. With
  ``few_shot=True`` they also show one worked answer and start the answer.
* ``"completion"``: for small offline models (SmolLM2-135M, gemma-3-270m), which copy a
  demonstration or drift when given the paper's long instructions, but continue a document
  well. A brainstorm prompt is a JSON list of three built-in tasks to continue; a triplet prompt
  is three worked examples of other tasks of the category (each with the wanted texts in one
  line), then the task, then the answer started.

:data:`BUILTIN_TASKS` is a hand-written list of tasks per category, so that triplets can be
written without brainstorming (``SynthConfig.tasks="builtin"``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from .._io import fingerprint

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
    "BUILTIN_TASKS",
    "builtin_tasks",
    "completion_brainstorm_prompt",
    "completion_triplet_prompt",
    "PROMPTS_ID",
]

#: Identity of this module's prompts, worked examples and built-in tasks (a hash of its source):
#: part of the synth stage fingerprints, so that editing a prompt makes saved output stale
#: instead of silently reusing examples written with the old one.
PROMPTS_ID = fingerprint(Path(__file__).read_text(encoding="utf-8"))

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
def sample_placeholders(category: str, rng: random.Random, languages: Sequence[str], num_words: Sequence[int]) -> dict[str, str]:
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
    """Every text a category's prompts may show: the reference tasks, the built-in tasks, and
    the worked examples' tasks and texts, so that an answer copying them can be recognised.

    Example:
        >>> "Match a word with its definition." in demonstration_texts("short-short")
        True
        >>> "Given a word, retrieve its synonyms." in demonstration_texts("short-short")
        True
    """
    _, references, _ = _BRAINSTORM[category]
    worked = [text for task, _, answer in _EXAMPLES[category] for text in (task, *answer.texts())]
    return (*references, *BUILTIN_TASKS[category], *worked)


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
    '- Avoid including the values of the "label" and "misleading_label" fields in the "input_text", that '
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


# -- built-in tasks --------------------------------------------------------------------------
#: Ten hand-written tasks per category, over many domains, for ``SynthConfig.tasks="builtin"``
#: (or ``"both"``) and as the list that a ``"completion"`` brainstorm continues. None is one of
#: the reference tasks or worked examples shown in the prompts.
BUILTIN_TASKS: dict[str, tuple[str, ...]] = {
    "short-long": (
        "Given a question about personal finance, retrieve articles that answer it.",
        "Given the name of a medicine, retrieve leaflets that describe its uses and side effects.",
        "Given a question about a programming error, retrieve forum answers that explain how to fix it.",
        "Given a travel question about a city, retrieve guide pages that answer it.",
        "Given a tenant's legal question, retrieve passages of housing law that apply to it.",
        "Given a gardening question, retrieve advice articles that answer it.",
        "Given the name of a historical event, retrieve encyclopedia passages that describe it.",
        "Given a symptom described in a few words, retrieve health articles that explain its possible causes.",
        "Given a cooking question, retrieve recipes or cooking guides that answer it.",
        "Given a question about a household appliance, retrieve sections of its manual that answer it.",
    ),
    "long-short": (
        "Given a customer complaint email, retrieve the name of the department that should handle it.",
        "Given a scientific abstract, retrieve keywords that describe it.",
        "Given a long product description, retrieve the product category it belongs to.",
        "Given a paragraph from a novel, retrieve a one-sentence summary of it.",
        "Given a job advertisement, retrieve the job title it is for.",
        "Given a patient's description of their symptoms, retrieve the name of the likely condition.",
        "Given a meeting transcript, retrieve the decision that was taken in it.",
        "Given a support ticket that describes a software bug, retrieve a short title for the bug.",
        "Given the plot summary of a film, retrieve the title of the film.",
        "Given a paragraph of a contract, retrieve the type of clause it is.",
    ),
    "short-short": (
        "Given a word, retrieve its synonyms.",
        "Given the name of a city, retrieve the country it is in.",
        "Given a book title, retrieve titles of books on the same subject.",
        "Given an error message, retrieve a one-line fix for it.",
        "Given a chemical element, retrieve a short description of its properties.",
        "Given an idiom, retrieve its plain meaning.",
        "Given a product name, retrieve the names of accessories for it.",
        "Given a medical abbreviation, retrieve its full form.",
        "Given a short factual question, retrieve a one-sentence answer.",
        "Given a job title, retrieve the skills it requires.",
    ),
    "long-long": (
        "Given a patent description, retrieve descriptions of earlier patents for the same invention.",
        "Given a long bug report, retrieve earlier bug reports about the same problem.",
        "Given the summary of a court case, retrieve summaries of cases with similar facts.",
        "Given a news article, retrieve articles from other outlets that report the same event.",
        "Given an essay that argues for a position, retrieve essays that argue against it.",
        "Given a recipe, retrieve recipes that use the same technique with other ingredients.",
        "Given a product review, retrieve reviews of competing products that discuss the same qualities.",
        "Given a lesson plan, retrieve lesson plans on the same topic for another age group.",
        "Given a job description, retrieve CVs of candidates who fit it.",
        "Given a travel blog post about a place, retrieve posts about similar places.",
    ),
    "sts": (
        "Given a sentence from a product review, retrieve sentences that express the same opinion.",
        "Given a question asked in a bank's support chat, retrieve questions with the same meaning.",
        "Given a news headline, retrieve headlines about the same event.",
        "Given a sentence from a textbook, retrieve paraphrases of it.",
        "Given a step of a recipe, retrieve steps that say the same thing in other words.",
        "Given a short social media post, retrieve posts that make the same point.",
        "Given a sentence that describes a picture, retrieve captions of the same scene.",
        "Given a symptom described by a patient, retrieve descriptions of the same symptom in other words.",
        "Given a sentence of software documentation, retrieve sentences that describe the same behaviour.",
        "Given a proverb, retrieve sentences that express the same idea.",
    ),
    "bitext": (
        "Given a sentence from a user manual, retrieve its translation.",
        "Given a line of dialogue from a film, retrieve its subtitle in another language.",
        "Given the headline of a news article, retrieve its translation.",
        "Given a product description from an online shop, retrieve its translation.",
        "Given a sentence from a legal contract, retrieve its translation.",
        "Given a question asked by a tourist, retrieve its translation.",
        "Given a sentence from a medicine leaflet, retrieve its translation.",
        "Given a sentence from a children's book, retrieve its translation.",
        "Given a dish on a restaurant menu, retrieve its translation.",
        "Given a sentence from a government website, retrieve its translation.",
    ),
    "classification": (
        "Classify a customer email as a complaint, a question or a compliment.",
        "Classify a restaurant review by the aspect it discusses: food, service, price or atmosphere.",
        "Classify a text message as spam or not spam.",
        "Classify the emotion of a short social media post as joy, anger, sadness, fear or surprise.",
        "Classify a question by the kind of answer it expects: a person, a place, a date, a number or a description.",
        "Classify a sentence from a scientific paper as background, method, result or conclusion.",
        "Classify a film review as positive or negative.",
        "Classify a programming forum post by language: Python, JavaScript, Java, C++ or SQL.",
        "Classify a bank transaction description as groceries, transport, rent, dining or entertainment.",
        "Classify a request to a voice assistant by intent: set an alarm, play music, weather or call someone.",
    ),
}


def builtin_tasks(category: str, count: int, rng: random.Random) -> list[str]:
    """``count`` tasks of :data:`BUILTIN_TASKS` (all of them if it has fewer), drawn by ``rng``
    and kept in the list's order.

    Example:
        >>> builtin_tasks("sts", 2, random.Random(0)) == builtin_tasks("sts", 2, random.Random(0))
        True
        >>> len(builtin_tasks("sts", 50, random.Random(0)))
        10
    """
    tasks = BUILTIN_TASKS[category]
    chosen = sorted(rng.sample(range(len(tasks)), min(count, len(tasks))))
    return [tasks[i] for i in chosen]


# -- "completion" prompts for small models ----------------------------------------------------
_COMPLETION_HEADER = {
    "retrieval": "Training examples for a text embedder. Each example has a retrieval task, the texts it wants, and "
    "a JSON object with a user query, a positive document that satisfies the query, and a hard negative document "
    "on the same subject that is less useful for the query.\n\n",
    "sts": "Training examples for a text embedder. Each example has a semantic similarity task, the texts it wants, "
    "and a JSON object with three texts: S2 means nearly the same as S1; S3 shares words with S1 but means "
    "something less similar.\n\n",
    "bitext": "Training examples for a text embedder. Each example has a translation task, the texts it wants, and a "
    "JSON object with a text S1, a good translation S2 and a worse translation S3 with some errors.\n\n",
    "classification": "Training examples for a text embedder. Each example has a classification task, the texts it "
    "wants, and a JSON object with an input text, its correct label and a misleading label that is wrong.\n\n",
}

_WANTED = {
    "short-long": "a {query_type} query, {query_length}, {clarity}; documents of about {num_words} words; "
    "{difficulty} level; in {language}",
    "long-short": "a {query_type} query of about {num_words} words, {clarity}; short documents; {difficulty} level; "
    "in {language}",
    "short-short": "a {query_type} query, {query_length}, {clarity}; short documents; {difficulty} level; in {language}",
    "long-long": "a {query_type} query and documents of about {num_words} words, {clarity}; {difficulty} level; in {language}",
    "sts": "three {unit}s in {language}; S2 scores {high_score} of 5 for similarity to S1, S3 scores {low_score}; "
    "{difficulty} level",
    "bitext": "S1 a {unit} in {source_language}; S2 and S3 translations into {target_language}, scoring {high_score} "
    "and {low_score} of 5; {difficulty} level",
    "classification": "an input text of about {num_words} words, {clarity}; {difficulty} level; in {language}",
}


def _example(task: str, answer: _Answer, **wanted: str) -> tuple[str, dict[str, str], _Answer]:
    return task, wanted, answer


# Three worked examples per category; the first is also the one worked answer of the
# "instructions" style. Their tasks are not in BUILTIN_TASKS.
_EXAMPLES: dict[str, tuple[tuple[str, dict[str, str], _Answer], ...]] = {
    "short-long": (
        _example(
            *_DEMONSTRATIONS["short-long"],
            query_type="common",
            query_length="less than 5 words",
            clarity="clear",
            num_words="40",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a question about an animal, retrieve encyclopedia passages that answer it.",
            RetrievalExample(
                user_query="how long do sea turtles live",
                positive_document="Most sea turtles take decades to reach adulthood. Green turtles mature at 20 to "
                "40 years, and many species are thought to live for 50 to 100 years in the wild.",
                hard_negative_document="Sea turtles lay their eggs on sandy beaches at night. A female digs a pit, "
                "lays around a hundred eggs and returns to the sea before dawn.",
            ),
            query_type="common",
            query_length="5 to 15 words",
            clarity="clear",
            num_words="35",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a question about the rules of a sport, retrieve rulebook passages that answer it.",
            RetrievalExample(
                user_query="offside rule throw-in",
                positive_document="A player is not in an offside position when receiving the ball directly from a "
                "throw-in, a goal kick or a corner kick, even when nearer to the goal line than the ball.",
                hard_negative_document="A throw-in is awarded when the whole of the ball passes over the touch line. "
                "The thrower must face the field and keep part of each foot on or behind the line.",
            ),
            query_type="long-tail",
            query_length="less than 5 words",
            clarity="understandable with some effort",
            num_words="35",
            difficulty="college",
            language="English",
        ),
    ),
    "long-short": (
        _example(
            *_DEMONSTRATIONS["long-short"],
            query_type="common",
            num_words="40",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a short biography, retrieve the person's profession.",
            RetrievalExample(
                user_query="Born in a small fishing town, she studied the ocean floor for thirty years. Her maps of "
                "the mid-Atlantic ridge, drawn from sonar soundings, helped convince geologists that continents drift.",
                positive_document="Oceanographic cartographer",
                hard_negative_document="Fishing boat captain",
            ),
            query_type="long-tail",
            num_words="35",
            clarity="clear",
            difficulty="college",
            language="English",
        ),
        _example(
            "Given a description of a landmark, retrieve its name.",
            RetrievalExample(
                user_query="This wrought-iron lattice tower was built for a world's fair in 1889 and was at first "
                "criticised by artists. At 330 metres it was the tallest structure in the world for forty years.",
                positive_document="The Eiffel Tower",
                hard_negative_document="The Statue of Liberty",
            ),
            query_type="common",
            num_words="35",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
    ),
    "short-short": (
        _example(
            *_DEMONSTRATIONS["short-short"],
            query_type="common",
            query_length="less than 5 words",
            clarity="clear",
            difficulty="college",
            language="English",
        ),
        _example(
            "Given the scientific name of a plant, retrieve its common name.",
            RetrievalExample(
                user_query="Helianthus annuus",
                positive_document="Common sunflower",
                hard_negative_document="Jerusalem artichoke",
            ),
            query_type="long-tail",
            query_length="less than 5 words",
            clarity="clear",
            difficulty="college",
            language="English",
        ),
        _example(
            "Given a unit conversion question, retrieve a one-line answer.",
            RetrievalExample(
                user_query="how many ounces in a pound",
                positive_document="There are 16 ounces in one pound.",
                hard_negative_document="There are 14 pounds in one stone.",
            ),
            query_type="common",
            query_length="5 to 15 words",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
    ),
    "long-long": (
        _example(
            *_DEMONSTRATIONS["long-long"],
            query_type="long-tail",
            num_words="40",
            clarity="clear",
            difficulty="PhD",
            language="English",
        ),
        _example(
            "Given a textbook section, retrieve sections of other textbooks on the same topic.",
            RetrievalExample(
                user_query="Supply and demand set the price of a good. When demand rises and supply stays the same, "
                "buyers compete for the available units and the price goes up until fewer people want to buy.",
                positive_document="A market price balances the quantity buyers want with the quantity sellers offer. "
                "If more people want a product than is available, sellers can charge more, and the price climbs.",
                hard_negative_document="Governments sometimes fix the price of goods such as bread or fuel. Price "
                "ceilings protect buyers in the short term but often lead to queues and black markets.",
            ),
            query_type="common",
            num_words="40",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a city's cycling policy, retrieve policies of other cities on the same issue.",
            RetrievalExample(
                user_query="The city will build 60 km of protected bike lanes by 2030, separated from car traffic by "
                "kerbs, and will add secure bicycle parking at every train station.",
                positive_document="Our plan adds a connected network of segregated cycle tracks on main roads over "
                "the next five years, together with covered bike racks near public transport stops.",
                hard_negative_document="The city will lower the speed limit to 30 km/h in residential streets and "
                "install speed cameras near schools to make walking safer.",
            ),
            query_type="long-tail",
            num_words="35",
            clarity="clear",
            difficulty="college",
            language="English",
        ),
    ),
    "sts": (
        _example(
            *_DEMONSTRATIONS["sts"],
            unit="sentence",
            high_score="4.5",
            low_score="3",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a weather report sentence, retrieve sentences that report the same weather.",
            SimilarityExample(
                S1="Heavy rain is expected across the north tomorrow afternoon.",
                S2="The north will see downpours tomorrow after midday.",
                S3="Tomorrow afternoon will be dry and sunny in the north.",
            ),
            unit="sentence",
            high_score="5",
            low_score="2.5",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Given a sentence from a children's story, retrieve sentences that tell the same event.",
            SimilarityExample(
                S1="The little fox hid behind the old oak tree.",
                S2="Behind the ancient oak, the small fox was hiding.",
                S3="The little fox climbed the old oak tree.",
            ),
            unit="sentence",
            high_score="4.5",
            low_score="3.5",
            difficulty="high school",
            language="English",
        ),
    ),
    "bitext": (
        _example(
            *_DEMONSTRATIONS["bitext"],
            unit="sentence",
            source_language="English",
            target_language="French",
            high_score="5",
            low_score="3",
            difficulty="high school",
        ),
        _example(
            "Given a sentence from a travel guide, retrieve its translation.",
            SimilarityExample(
                S1="Der Zug fährt um acht Uhr vom Hauptbahnhof ab.",
                S2="The train leaves the main station at eight o'clock.",
                S3="The train leaves the main station at nine o'clock.",
            ),
            unit="sentence",
            source_language="German",
            target_language="English",
            high_score="5",
            low_score="3",
            difficulty="high school",
        ),
        _example(
            "Given a sentence from an email, retrieve its translation.",
            SimilarityExample(
                S1="Gracias por su mensaje; le responderé mañana.",
                S2="Thank you for your message; I will reply to you tomorrow.",
                S3="Thank you for your message; I will reply next week.",
            ),
            unit="sentence",
            source_language="Spanish",
            target_language="English",
            high_score="4.5",
            low_score="3",
            difficulty="high school",
        ),
    ),
    "classification": (
        _example(
            *_DEMONSTRATIONS["classification"], num_words="20", clarity="clear", difficulty="high school", language="English"
        ),
        _example(
            "Classify a news headline's topic as politics, sports, business or technology.",
            ClassificationExample(
                input_text="Shares of the chip maker jumped after it reported record quarterly profits.",
                label="business",
                misleading_label="technology",
            ),
            num_words="15",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
        _example(
            "Classify the urgency of a support ticket as low, medium or high.",
            ClassificationExample(
                input_text="Since this morning none of our staff can log in, and customers cannot place orders.",
                label="high",
                misleading_label="medium",
            ),
            num_words="15",
            clarity="clear",
            difficulty="high school",
            language="English",
        ),
    ),
}


def _header(category: str) -> str:
    return _COMPLETION_HEADER["retrieval" if category in _ASYMMETRIC else category]


def completion_brainstorm_prompt(category: str, shown: Sequence[str]) -> str:
    """A ``"completion"`` brainstorm prompt: a JSON list of ``shown`` tasks, left open after a
    comma and a quote, for the model to continue with new tasks (parse the answer after
    :func:`answer_prefix` ``(None)``).

    Example:
        >>> print(completion_brainstorm_prompt("sts", ["Task one.", "Task two."]))
        A list of semantic textual similarity tasks, where the query and the target are texts of the same kind. Specify what kind of text is compared, and what counts as similar. Each task is one sentence.
        ["Task one.", "Task two.", "
    """
    what, _, guideline = _BRAINSTORM[category]
    listed = _json_list(shown)
    return f'A list of {what}. {guideline} Each task is one sentence.\n{listed[:-1]}, "'


def completion_triplet_prompt(category: str, task: str, placeholders: dict[str, str], rng: random.Random) -> str:
    """A ``"completion"`` triplet prompt: three worked examples of other tasks of the category
    (in an order drawn by ``rng``), then ``task`` and its wanted texts, then the answer started
    (:func:`answer_prefix`). Each example is one line of JSON.

    Example:
        >>> p = sample_placeholders("short-short", random.Random(0), ["English"], [50])
        >>> prompt = completion_triplet_prompt("short-short", "Given a city, retrieve its country.", p, random.Random(0))
        >>> print(prompt[prompt.rindex("Task:"):])
        Task: Given a city, retrieve its country.
        Wanted: a long-tail query, 5 to 15 words, clear; short documents; college level; in English
        JSON: {"user_query": "
    """
    examples = list(_EXAMPLES[category])
    rng.shuffle(examples)
    shown = "".join(
        f"Task: {t}\nWanted: {_WANTED[category].format(**wanted)}\nJSON: {json.dumps(a.model_dump(), ensure_ascii=False)}\n\n"
        for t, wanted, a in examples
    )
    wanted = _WANTED[category].format(**placeholders)
    return f"{_header(category)}{shown}Task: {task}\nWanted: {wanted}\nJSON: {answer_prefix(category)}"
