"""Passkey retrieval (E5-mistral, Wang et al. 2024, section 5.3): does an embedder see the whole document?

Each of ``--candidates`` documents is filler text of exactly N model tokens holding one
sentence, at a random position, with a unique person's name and a random five-digit passkey:
"{name}'s pass key is {passkey}. Remember it. {passkey} is the pass key of {name}." Each
query asks "what is {name}'s pass key?" and must rank its own document first among all
candidates. Accuracy@1 is reported per length, next to how many key sentences lie beyond the
model's ``max_seq_length`` (truncated away, so invisible to the model). Chance is
1/candidates. Everything is drawn from ``--seed``, so a run is reproducible.

Usage::

    python bench/passkey.py                                    # offline all-MiniLM-L6-v2
    python bench/passkey.py --model runs/model --lengths 128 256 512 1024 2048 --format e5
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

import numpy as np

from gecko_distill.embedder.encoding import encode_documents, encode_queries, load_model
from gecko_distill.paths import default_embedder_path

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY = "{name}'s pass key is {passkey}. Remember it. {passkey} is the pass key of {name}."
QUERY = "what is {name}'s pass key?"
TASK = "Given a person's name, retrieve the document that holds their pass key"
FIRST = [
    "Alice",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Jamal",
    "Kiri",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomoko",
    "Uma",
    "Viktor",
    "Wen",
    "Yusuf",
]
LAST = [
    "Abbott",
    "Berg",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Gupta",
    "Horvat",
    "Ito",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quispe",
    "Rossi",
    "Sato",
    "Tanaka",
    "Varga",
    "Weber",
]


@dataclass
class Document:
    name: str
    passkey: str
    text: str
    key_end_token: int  # the key sentence ends at this many tokens from the start


def make_documents(tokenizer, length: int, count: int, rng: random.Random) -> list[Document]:
    """``count`` documents of exactly ``length`` tokens (``tokenizer``'s, no special tokens), each
    with a unique name and a random passkey at a random sentence position."""
    names = rng.sample([f"{first} {last}" for first in FIRST for last in LAST], count)
    filler = [s.strip() + "." for s in FILLER.split(".") if s.strip()]
    docs = []
    for name in names:
        passkey = f"{rng.randrange(10000, 100000)}"
        key = KEY.format(name=name, passkey=passkey)
        budget = length - _count(tokenizer, key) - 1
        sentences = [filler[i % len(filler)] for i in range(max(budget, 0) // 2 + 1)]
        before = _fit(tokenizer, sentences, budget)
        at = rng.randint(0, len(before))
        words = (" ".join(before[:at] + [key] + before[at:])).split(" ")
        text = _cut(tokenizer, words, length)
        key_end = _count(tokenizer, " ".join(before[:at] + [key]))
        docs.append(Document(name=name, passkey=passkey, text=text, key_end_token=key_end))
    return docs


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def _fit(tokenizer, sentences: list[str], budget: int) -> list[str]:
    """The longest prefix of ``sentences`` within ``budget`` tokens (binary search)."""
    lo, hi = 0, len(sentences)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _count(tokenizer, " ".join(sentences[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return sentences[:lo]


def _cut(tokenizer, words: list[str], length: int) -> str:
    """Pad with filler words or cut at the end so the text is exactly ``length`` tokens, or as
    close as word boundaries allow."""
    pad = FILLER.split(" ")
    i = 0
    while _count(tokenizer, " ".join(words)) < length:
        words.append(pad[i % len(pad)])
        i += 1
    while _count(tokenizer, " ".join(words)) > length:
        words.pop()
    return " ".join(words)


def accuracy(model, docs: list[Document], fmt: str, batch_size: int) -> float:
    queries = [QUERY.format(name=d.name) for d in docs]
    if fmt in ("gecko", "e5"):
        q = encode_queries(model, queries, task=TASK, query_format=fmt, batch_size=batch_size)
        d = encode_documents(model, [doc.text for doc in docs], query_format=fmt, batch_size=batch_size)
    else:
        q = model.encode(queries, batch_size=batch_size, normalize_embeddings=True)
        d = model.encode([doc.text for doc in docs], batch_size=batch_size, normalize_embeddings=True)
    top1 = np.asarray(q @ np.asarray(d).T).argmax(axis=1)
    return float((top1 == np.arange(len(docs))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument(
        "--format",
        choices=["plain", "gecko", "e5"],
        default="plain",
        help="plain: raw texts; gecko: 'task: … | query: …' / 'title: none | text: …'; e5: 'Instruct: …\\nQuery: …'",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load_model(args.model)
    limit = model.max_seq_length
    tokenizer = model.tokenizer
    specials = len(tokenizer("a").input_ids) - _count(tokenizer, "a")
    print(f"model: {args.model or default_embedder_path()}")
    print(
        f"max_seq_length: {limit} tokens ({specials} of them special); {args.candidates} candidates per length; "
        f"format {args.format}; seed {args.seed}; chance {1 / args.candidates:.0%}\n"
    )
    print("| length (tokens) | docs truncated | key beyond max_seq_length | accuracy@1 | encode s |")
    print("|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        rng = random.Random(f"{args.seed}:{length}")
        docs = make_documents(tokenizer, length, args.candidates, rng)
        started = time.perf_counter()
        acc = accuracy(model, docs, args.format, args.batch_size)
        visible = limit - specials
        truncated = sum(_count(tokenizer, d.text) > visible for d in docs) / len(docs)
        hidden = sum(d.key_end_token > visible for d in docs) / len(docs)
        print(f"| {length} | {truncated:.0%} | {hidden:.0%} | {acc:.0%} | {time.perf_counter() - started:.1f} |")


if __name__ == "__main__":
    main()
