"""Text helpers shared by the stages that read passages and check LLM output.

The FRet stages (generate, relabel) and the E5 mode (brainstorm, triplets) cut passages to a
word budget, compare texts by their words, and reject looping output with the same helpers.

Words are runs of letters and digits in any script, except in the scripts written without
spaces between words (Chinese, Japanese), where each character counts as one word, as BERT's
tokenizer treats them; so a Chinese query has a length, and a Chinese passage is cut, in
characters. :func:`detect_language` tells the language of a text from its script and, for
Latin-script languages, from its most common function words: light, dependency-free, and
reliable on passages (tens of words) rather than on a few words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import NamedTuple

__all__ = [
    "LANGUAGES",
    "WORDS",
    "Language",
    "count_words",
    "detect_language",
    "detection_rules",
    "language_code",
    "normalise",
    "repeats_phrase",
    "script_counts",
    "stopword_hits",
    "truncate_words",
    "words",
]

#: Characters of the scripts written without spaces between words: Han ideographs (CJK
#: unified, extensions A–F and compatibility) and Japanese kana.
_CHARACTER_WORDS = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"

#: A word: one character of a script written without spaces (Chinese, Japanese), or a run of
#: letters, digits or underscores in any other script.
WORDS = re.compile(rf"[{_CHARACTER_WORDS}]|[^\W{_CHARACTER_WORDS}]+", re.UNICODE)

#: CJK punctuation (ideographic comma and full stop, fullwidth punctuation): no word of its own.
_CJK_PUNCTUATION = "\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"

#: What :func:`truncate_words` counts: one character of those scripts, or a run of other
#: characters up to the next space (CJK punctuation is not counted).
_UNITS = re.compile(rf"[{_CHARACTER_WORDS}]|[^\s{_CHARACTER_WORDS}{_CJK_PUNCTUATION}]+")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``; a Chinese or Japanese character is a word.

    Example:
        >>> words("Print lines that MATCH a pattern.")
        ['print', 'lines', 'that', 'match', 'a', 'pattern']
        >>> words("用 grep 搜索")
        ['用', 'grep', '搜', '索']
    """
    return WORDS.findall(text.lower())


def count_words(text: str) -> int:
    """How many words :func:`truncate_words` counts in ``text``: whitespace-separated parts,
    and each Chinese or Japanese character.

    Example:
        >>> count_words("one two three"), count_words("列出目录 ls -l")
        (3, 6)
    """
    return len(_UNITS.findall(text))


def normalise(text: str) -> str:
    """``text`` as its lower-cased words joined by single spaces, for comparing texts.

    Example:
        >>> normalise("  What is  a Gecko? ")
        'what is a gecko'
    """
    return " ".join(words(text))


def truncate_words(text: str, max_words: int) -> tuple[str, bool]:
    """Cut ``text`` to ``max_words`` words (:func:`count_words`); say whether it was cut.
    Runs of whitespace become single spaces.

    Example:
        >>> truncate_words("one two three four", 2)
        ('one two …', True)
        >>> truncate_words("列出目录中的文件", 4)
        ('列出目录 …', True)
    """
    joined = " ".join(text.split())
    units = list(_UNITS.finditer(joined))
    if len(units) <= max_words:
        return joined, False
    return joined[: units[max_words - 1].end()] + " …", True


def repeats_phrase(tokens: list[str], n: int) -> bool:
    """Whether a run of ``n`` tokens occurs twice: the mark of a looping small model.

    Example:
        >>> repeats_phrase("what is the claim what is the claim".split(), 3)
        True
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


# -- languages -------------------------------------------------------------------------------------
class Language(NamedTuple):
    """A language the ``generate`` stage can ask for and check.

    Attributes:
        code: ISO 639-1 code.
        name: English name, as the prompt names it.
        scripts: The scripts its letters are written in (as :func:`script_counts` names them).
        stopwords: Frequent function words that tell it apart from other Latin-script
            languages (empty for the others, which their script tells apart).
    """

    code: str
    name: str
    scripts: frozenset[str]
    stopwords: frozenset[str] = frozenset()


#: Code, English name and scripts of each language.
_TABLE = (
    ("en", "English", "Latin"),
    ("de", "German", "Latin"),
    ("fr", "French", "Latin"),
    ("es", "Spanish", "Latin"),
    ("it", "Italian", "Latin"),
    ("pt", "Portuguese", "Latin"),
    ("nl", "Dutch", "Latin"),
    ("sv", "Swedish", "Latin"),
    ("da", "Danish", "Latin"),
    ("no", "Norwegian", "Latin"),
    ("fi", "Finnish", "Latin"),
    ("pl", "Polish", "Latin"),
    ("cs", "Czech", "Latin"),
    ("tr", "Turkish", "Latin"),
    ("id", "Indonesian", "Latin"),
    ("vi", "Vietnamese", "Latin"),
    ("ro", "Romanian", "Latin"),
    ("hu", "Hungarian", "Latin"),
    ("zh", "Chinese", "Han"),
    ("ja", "Japanese", "Han Hiragana Katakana"),
    ("ko", "Korean", "Hangul"),
    ("ru", "Russian", "Cyrillic"),
    ("uk", "Ukrainian", "Cyrillic"),
    ("el", "Greek", "Greek"),
    ("he", "Hebrew", "Hebrew"),
    ("ar", "Arabic", "Arabic"),
    ("fa", "Persian", "Arabic"),
    ("hi", "Hindi", "Devanagari"),
    ("bn", "Bengali", "Bengali"),
    ("ta", "Tamil", "Tamil"),
    ("th", "Thai", "Thai"),
)

#: Function words that tell the Latin-script languages apart. One-letter words ("a", "i", "y",
#: "e", "o", "w", "z") are left out: they are also variable names in code, and too many
#: languages share them. Norwegian has none: it is too close to Danish to be told by them, so
#: it is never detected, only asked for.
_FUNCTION_WORDS = {
    "en": (
        "the and of to is are was that it for with as on by this be from or an which not can have has how "
        "what when where why does you your"
    ),
    "de": (
        "der die das und ist sind nicht mit von den dem des ein eine einen einer auf für sich auch wird "
        "werden zu im oder bei wenn es wie man kann nach über aus"
    ),
    "fr": ("le les et est sont des une un du dans pour qui pas sur avec au aux ce cette par il elle ne se plus comment ou peut"),
    "es": "el los las es son un una por con para del se al lo como más pero su sus está cómo puede",
    "it": "il lo gli di che un una per con non della dei delle sono si da nel nella alla come può anche",
    "pt": "os as um uma do da dos das em para com não por se no na nos mais ao como pode são",
    "nl": "het een en van is dat niet op te met voor zijn die worden wordt ook aan er als bij naar kan hoe",
    "sv": "och att är för av till inte ett hur eller också jag vad var som det med den en kan medan om",
    "da": "og at er for af til ikke et hvordan eller også jeg hvad som det med den en kan mens hvis",
    "fi": "ja on ei että se tai kun jos ovat mutta myös voi joka tämä sekä kuin miten",
    "pl": "na się nie to jest do że jak są dla lub od po przez oraz można czy tylko który która które przy już",
    "cs": "je se na to že do jsou pro jako nebo ale by od po také",
    "tr": "ve bir bu da de ile için olarak çok daha gibi ne veya olan her nasıl",
    "id": "dan yang di ini itu dengan untuk dari tidak dalam adalah akan pada atau juga",
    "vi": "và của là có trong được cho không các một những với này để",
    "ro": "și în este cu nu pe care din mai sau pentru",
    "hu": "az és hogy nem egy is van meg ez csak vagy mint",
}

#: The languages :func:`detect_language` tells and the ``generate`` stage can ask for, by code.
LANGUAGES: dict[str, Language] = {
    code: Language(code, name, frozenset(scripts.split()), frozenset(_FUNCTION_WORDS.get(code, "").split()))
    for code, name, scripts in _TABLE
}

#: Each stopword's languages, for counting all languages' hits in one pass.
_STOPWORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _lang in LANGUAGES.values():
    for _word in _lang.stopwords:
        _STOPWORD_LANGUAGES[_word] = (*_STOPWORD_LANGUAGES.get(_word, ()), _lang.code)

#: Unicode character-name prefixes of the scripts :func:`script_counts` names.
_SCRIPT_NAMES = {
    "LATIN": "Latin",
    "CJK": "Han",
    "HIRAGANA": "Hiragana",
    "KATAKANA": "Katakana",
    "HANGUL": "Hangul",
    "CYRILLIC": "Cyrillic",
    "GREEK": "Greek",
    "HEBREW": "Hebrew",
    "ARABIC": "Arabic",
    "DEVANAGARI": "Devanagari",
    "BENGALI": "Bengali",
    "TAMIL": "Tamil",
    "THAI": "Thai",
}
_script_of: dict[str, str] = {}
_ASCII_LETTERS = re.compile("[A-Za-z]")
_NOT_ASCII = re.compile("[^\x00-\x7f]")
_UKRAINIAN = frozenset("іїєґІЇЄҐ")
_PERSIAN = frozenset("پچژگکی")  # Persian letters that Arabic does not use (keheh and Farsi yeh too)
_MIN_LETTERS = 3  # fewer letters: no language
_MIN_SCRIPT_SHARE = 0.25  # a script other than Latin with this share of the letters decides the language
_MIN_STOPWORDS = 3  # distinct function words a Latin-script language needs
_MARGIN = 1.5  # ... and how many times the next language's hits it needs
_DETECT_CHARS = 2000  # the start of a text that detection reads


def script_counts(text: str) -> Counter[str]:
    """How many letters of ``text`` are in each script (``"Latin"``, ``"Han"``, ``"Cyrillic"``...;
    ``"Other"`` for the scripts not named here).

    Example:
        >>> sorted(script_counts("ls 命令").items())
        [('Han', 2), ('Latin', 2)]
    """
    counts: Counter[str] = Counter()
    counts["Latin"] = len(_ASCII_LETTERS.findall(text))
    for char in _NOT_ASCII.findall(text):
        if not char.isalpha():
            continue
        script = _script_of.get(char)
        if script is None:
            prefix = unicodedata.name(char, "").split(" ", 1)[0]
            script = _script_of[char] = _SCRIPT_NAMES.get(prefix, "Other")
        counts[script] += 1
    return +counts


def stopword_hits(tokens: list[str]) -> Counter[str]:
    """How many of ``tokens`` (lower-cased words) are function words of each Latin-script
    language; a word that several languages share counts for each by that share.

    Example:
        >>> hits = stopword_hits(words("Der Befehl zeigt die Dateien und Ordner an"))
        >>> hits["de"], hits["nl"]  # "die" is Dutch too
        (2.5, 0.5)
    """
    hits: Counter[str] = Counter()
    for token in tokens:
        codes = _STOPWORD_LANGUAGES.get(token, ())
        for code in codes:
            hits[code] += 1 / len(codes)
    return hits


def detect_language(text: str) -> str | None:
    """The language of ``text``, as a code of :data:`LANGUAGES`, or ``None`` when it cannot be
    told (too few letters, a script not listed, or too few function words to tell Latin-script
    languages apart). It reads the first 2,000 characters.

    A script other than Latin that holds a quarter of the letters decides the language:
    Han alone is Chinese, Han with kana Japanese, Cyrillic Russian (Ukrainian with its own
    letters), Arabic script Arabic (Persian with its own letters). Latin-script text is the
    language with the most function words, if at least three different ones occur and it
    has 1.5 times as many as the next language.

    Example:
        >>> detect_language("The ls command lists the files that are in a directory, with their size.")
        'en'
        >>> detect_language("Der Befehl ls zeigt die Dateien eines Verzeichnisses an, und mit -l auch ihre Größe.")
        'de'
        >>> detect_language("ls 命令用于列出目录中的文件。"), detect_language("ls -l /tmp") is None
        ('zh', True)
    """
    text = text[:_DETECT_CHARS]
    scripts = script_counts(text)
    letters = sum(scripts.values())
    if letters < _MIN_LETTERS:
        return None
    other = [(n, s) for s, n in scripts.items() if s != "Latin"]
    if other:
        kana = scripts["Hiragana"] + scripts["Katakana"]
        if scripts["Han"] + kana >= _MIN_SCRIPT_SHARE * letters:
            return "ja" if kana >= 0.1 * (scripts["Han"] + kana) else "zh"
        count, script = max(other)
        if count >= _MIN_SCRIPT_SHARE * letters:
            if script == "Cyrillic":
                return "uk" if sum(c in _UKRAINIAN for c in text) >= 0.01 * count else "ru"
            if script == "Arabic":
                return "fa" if sum(c in _PERSIAN for c in text) >= 0.02 * count else "ar"
            return next((lang.code for lang in LANGUAGES.values() if lang.scripts == {script}), None)
    tokens = words(text)
    ranked = stopword_hits(tokens).most_common(2)
    if not ranked or (len(ranked) > 1 and ranked[0][1] < _MARGIN * ranked[1][1]):
        return None
    best = LANGUAGES[ranked[0][0]]
    return best.code if len(best.stopwords.intersection(tokens)) >= _MIN_STOPWORDS else None


def language_code(value: str) -> str:
    """The code of a language given by its code or English name (any case).

    Raises:
        ValueError: The language is not in :data:`LANGUAGES`.

    Example:
        >>> language_code("German"), language_code("ZH")
        ('de', 'zh')
    """
    key = value.strip().lower()
    for language in LANGUAGES.values():
        if key in (language.code, language.name.lower()):
            return language.code
    raise ValueError(f"unknown language {value!r}: use one of {', '.join(sorted(LANGUAGES))}")


def detection_rules() -> dict[str, object]:
    """What :func:`detect_language` decides by (the languages, their scripts and function
    words, and its thresholds), as plain sorted data: a fingerprint of it changes when the
    detection could.

    Example:
        >>> rules = detection_rules()
        >>> rules["languages"]["de"]["name"], "und" in rules["languages"]["de"]["function_words"]
        ('German', True)
    """
    return {
        "languages": {
            lang.code: {"name": lang.name, "scripts": sorted(lang.scripts), "function_words": sorted(lang.stopwords)}
            for lang in LANGUAGES.values()
        },
        "thresholds": [_MIN_LETTERS, _MIN_SCRIPT_SHARE, _MIN_STOPWORDS, _MARGIN, _DETECT_CHARS],
        "special_letters": {"uk": sorted(_UKRAINIAN), "fa": sorted(_PERSIAN)},
        "words": WORDS.pattern,
    }
