"""Benchmark: where the pipeline's time goes, as ratios measured in one run on one corpus slice.

The machine this runs on is shared and noisy, so every figure is a ratio of two settings timed
back to back on the same inputs (in ABBA order where it is cheap), never an absolute time:

* **teacher**: gemma-3-270m generating queries (completion tokens/s) and relabelling
  candidates (pairs/s), fp32 against bf16, with how often bf16 writes the same query (greedy)
  and picks the same positive;
* **embedder**: all-MiniLM-L6-v2 encoding passages (passages/s) on torch fp32 against ONNX
  Runtime (fp32 and int8) and OpenVINO, with the retrieval figures against torch: each
  pseudo-query's seed in the top N, the top-N overlap, and the lowest cosine between a
  backend's vector and torch's;
* **training**: optimiser steps/s of the library's ``train`` against a plain
  ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss`` on the same FRet data,
  end to end (model load, training, save; the best of two runs each, ABBA order), and the
  extra cost of the Matryoshka loss (plain trainer, ``MatryoshkaLoss`` around the same loss,
  against the loss alone). The quick run's 4 steps are mostly load and save: a smoke test.

Only corpus passages are used, never the benchmark's queries or qrels: the teacher writes its
queries from passages, and the embedder's pseudo-queries are each passage's first sentence,
searched against the passages with that sentence removed. The training data are FRet examples
made the same way (query: the first sentence; positive: the rest; negative: another passage),
so that training is timed without a teacher run.

    nice -n 10 python bench/pipeline.py --quick        # smoke run, about 2 minutes on 2 cores
    nice -n 10 python bench/pipeline.py                # about 25 minutes on 2 idle cores (training: 15)
    python bench/pipeline.py --sections embedder       # one section

Backends that are not installed are reported as skipped (``pip install 'gecko-distill[onnx]'``,
``'gecko-distill[openvino]'``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gecko_distill import (
    FRetExample,
    GenerateConfig,
    Passage,
    RelabelConfig,
    RetrieveConfig,
    generate,
    load_passages,
    relabel,
    retrieve,
)
from gecko_distill.embedder.backends import BACKENDS, backend_available
from gecko_distill.embedder.encoding import format_documents, format_queries, load_model

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "manpages" / "corpus.jsonl"

#: Slice sizes: (full, quick).
SIZES = {
    "teacher_passages": (24, 2),  # queries generated per precision
    "relabel_queries": (12, 2),
    "relabel_top_n": (10, 4),
    "embed_passages": (512, 64),
    "embed_rounds": (3, 2),  # timed passes per backend, interleaved; the median counts
    "train_examples": (512, 64),
    "train_steps": (10, 4),  # 6 timed runs (3 variants, the best of 2): about 3 minutes each on 2 cores
    "train_batch": (32, 8),
}
SECTIONS = ("teacher", "embedder", "training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--quick", action="store_true", help="a small slice of everything (a smoke run)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--top-n", type=int, default=20, help="N of the embedder's recall figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("GECKO_DISTILL_NO_PROGRESS", "1")
    size = {k: v[1] if args.quick else v[0] for k, v in SIZES.items()}
    corpus = load_passages(args.corpus).records
    torch = __import__("torch")
    print(
        f"corpus {args.corpus} ({len(corpus)} passages); torch threads {torch.get_num_threads()}; "
        f"{'quick' if args.quick else 'full'} run"
    )
    figures: dict = {}
    for section in args.sections:
        started = time.perf_counter()
        figures[section] = {"teacher": teacher, "embedder": embedder, "training": training}[section](corpus, size, args)
        figures[section]["section_wall_s"] = round(time.perf_counter() - started, 1)
        print(f"{section}: {json.dumps(figures[section])}", flush=True)
    print(json.dumps(figures, indent=2))


# -- teacher ------------------------------------------------------------------------------------
def teacher(corpus: list[Passage], size: dict, args: argparse.Namespace) -> dict:
    """Generation tokens/s and relabel pairs/s, fp32 against bf16 (the same inputs)."""
    from gecko_distill.llm.registry import offline_gguf_path
    from gecko_distill.llm.transformers_backend import TransformersLLM, cpu_supports_bf16

    gguf = offline_gguf_path("gemma3-270m")
    llms = {dtype: TransformersLLM(gguf, dtype=dtype) for dtype in ("float32", "bfloat16")}
    seeds = random.Random(args.seed).sample(corpus, size["teacher_passages"])
    config = GenerateConfig()
    generated, rates = {}, {}
    for dtype in ("float32", "bfloat16"):
        started = time.perf_counter()
        result = generate(seeds, llms[dtype], config)
        wall = time.perf_counter() - started
        generated[dtype] = result
        rates[f"generate_tokens_per_s_{dtype}"] = result.stats["llm_completion_tokens"] / wall
    by_id = {dtype: {q.id: q.query for q in generated[dtype].records} for dtype in generated}
    shared = set(by_id["float32"]) & set(by_id["bfloat16"])
    same_query = sum(by_id["float32"][i] == by_id["bfloat16"][i] for i in shared) / max(len(shared), 1)

    queries = generated["float32"].records[: size["relabel_queries"]]
    candidates = retrieve(queries, corpus, config=RetrieveConfig(top_n=size["relabel_top_n"]), embedding_cache=False).records
    pairs = sum(len(c.candidates) for c in candidates)
    relabel_config = RelabelConfig(rank_by="rrf")
    positives = {}
    for dtype in ("bfloat16", "float32"):  # the other order than generation: drift cancels out
        started = time.perf_counter()
        result = relabel(candidates, corpus, llms[dtype], relabel_config)
        rates[f"relabel_pairs_per_s_{dtype}"] = pairs / (time.perf_counter() - started)
        positives[dtype] = {e.id: e.positive.id for e in result.records}
    both = set(positives["float32"]) & set(positives["bfloat16"])
    return {
        "cpu_bf16": cpu_supports_bf16(),
        "generated_queries": len(shared),
        "relabel_pairs": pairs,
        **{k: round(v, 2) for k, v in rates.items()},
        "generate_speedup_bf16": round(rates["generate_tokens_per_s_bfloat16"] / rates["generate_tokens_per_s_float32"], 2),
        "relabel_speedup_bf16": round(rates["relabel_pairs_per_s_bfloat16"] / rates["relabel_pairs_per_s_float32"], 2),
        "same_query_bf16": round(same_query, 3),
        "same_positive_bf16": round(
            sum(positives["float32"][i] == positives["bfloat16"][i] for i in both) / max(len(both), 1), 3
        ),
    }


# -- embedder -----------------------------------------------------------------------------------
def pseudo_queries(corpus: list[Passage], count: int, seed: int) -> tuple[list[str], list[Passage]]:
    """Each sampled passage's first sentence as its query, and the passage without it (passages
    of one sentence are left out)."""
    queries, docs = [], []
    for p in random.Random(seed).sample(corpus, len(corpus)):
        first, sep, rest = p.text.partition(". ")
        if sep and len(first.split()) >= 4 and len(rest.split()) >= 8:
            queries.append(first)
            docs.append(p.model_copy(update={"text": rest}))
        if len(queries) == count:
            break
    return queries, docs


def embedder(corpus: list[Passage], size: dict, args: argparse.Namespace) -> dict:
    """Passages/s per backend, and how its retrieval compares with torch's."""
    queries, docs = pseudo_queries(corpus, size["embed_passages"], args.seed)
    doc_texts = format_documents(docs, "plain")
    query_texts = format_queries(queries, task="", query_format="plain")
    available = [b for b in BACKENDS if backend_available(b)]
    out: dict = {"passages": len(doc_texts), "skipped": [b for b in BACKENDS if b not in available]}
    models, load_s = {}, {}
    for backend in available:
        started = time.perf_counter()
        models[backend] = load_model(None, backend=backend, device="cpu")
        load_s[backend] = round(time.perf_counter() - started, 1)  # includes a first export
        models[backend].encode(doc_texts[:16], batch_size=16)  # warm-up
    rates: dict[str, list[float]] = {b: [] for b in available}
    vectors = {}
    for round_ in range(size["embed_rounds"]):
        order = available if round_ % 2 == 0 else available[::-1]
        for backend in order:
            started = time.perf_counter()
            vectors[backend] = models[backend].encode(doc_texts, batch_size=64, normalize_embeddings=True)
            rates[backend].append(len(doc_texts) / (time.perf_counter() - started))
    cutoffs = sorted({min(n, len(doc_texts)) for n in (1, 10, args.top_n)})
    reference = None
    for backend in available:
        q = models[backend].encode(query_texts, batch_size=64, normalize_embeddings=True)
        top = np.argsort(-(q @ vectors[backend].T), axis=1)[:, : cutoffs[-1]]
        if reference is None:
            reference = (top, vectors[backend])
        rate = statistics.median(rates[backend])
        row = {"passages_per_s": round(rate, 1), "speedup": round(rate / statistics.median(rates["torch"]), 2)}
        row["load_s"] = load_s[backend]
        for n in cutoffs:
            row[f"seed_in_top_{n}"] = round(float(np.mean([i in r[:n] for i, r in enumerate(top)])), 4)
            row[f"top_{n}_overlap"] = round(
                float(np.mean([len(set(a[:n]) & set(b[:n])) / n for a, b in zip(top, reference[0])])), 4
            )
        row["min_cosine_to_torch"] = round(float((vectors[backend] * reference[1]).sum(1).min()), 5)
        out[backend] = row
    return out


# -- training -----------------------------------------------------------------------------------
def fret_examples(corpus: list[Passage], count: int, seed: int) -> list[FRetExample]:
    """FRet examples without a teacher: the first sentence as the query, the rest of the
    passage as the positive, the next passage as the negative."""
    queries, docs = pseudo_queries(corpus, count, seed)
    return [
        FRetExample(
            id=f"{doc.id}#0",
            task="Given a sentence, retrieve the passage it comes from",
            query=query,
            positive=doc,
            negative=docs[(i + 1) % len(docs)],
            seed_passage_id=doc.id,
            positive_is_seed=True,
            positive_ranks={},
            negative_ranks={},
        )
        for i, (query, doc) in enumerate(zip(queries, docs))
    ]


def training(corpus: list[Passage], size: dict, args: argparse.Namespace) -> dict:
    """Steps/s of ``train`` against a plain trainer, and the Matryoshka loss's extra cost."""
    from gecko_distill.embedder.selfcheck import SelfCheckConfig
    from gecko_distill.embedder.train import TrainConfig, train

    examples = fret_examples(corpus, size["train_examples"], args.seed)
    steps, batch = size["train_steps"], size["train_batch"]
    config = TrainConfig(max_steps=steps, batch_size=batch, self_check=SelfCheckConfig(holdout_fraction=0))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        # ABBA: library, plain MNRL, plain Matryoshka(MNRL), then the same in reverse
        plan = ["library", "plain_mnrl", "plain_matryoshka"]
        for i, name in enumerate(plan + plan[::-1]):
            out = Path(tmp) / f"{name}-{i}"
            started = time.perf_counter()
            if name == "library":
                train(examples, output_dir=out, config=config)
            else:
                plain_train(examples, out, steps, batch, matryoshka=name == "plain_matryoshka", seed=config.seed)
            runs.setdefault(name, []).append(steps / (time.perf_counter() - started))
    rate = {name: max(values) for name, values in runs.items()}  # the best of two: a load spike slows one run
    return {
        "examples": len(examples),
        "steps": steps,
        "batch_size": batch,
        **{f"steps_per_s_{name}": round(value, 3) for name, value in rate.items()},
        "library_vs_plain_mnrl": round(rate["library"] / rate["plain_mnrl"], 3),
        "library_vs_plain_matryoshka": round(rate["library"] / rate["plain_matryoshka"], 3),
        "matryoshka_extra_cost": round(rate["plain_mnrl"] / rate["plain_matryoshka"] - 1, 3),
    }


def plain_train(examples: list[FRetExample], out: Path, steps: int, batch: int, *, matryoshka: bool, seed: int) -> None:
    """The baseline: sentence-transformers' trainer and loss on the same (plain-format) texts."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses

    model = load_model(None)
    data = Dataset.from_dict(
        {
            "anchor": format_queries([(e.task, e.query) for e in examples], query_format="plain"),
            "positive": format_documents([e.positive for e in examples], "plain"),
            "negative": format_documents([e.negative for e in examples], "plain"),
        }
    )
    loss = losses.MultipleNegativesRankingLoss(model)
    if matryoshka:
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=[384, 256, 128, 64])
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=5e-5,
        warmup_ratio=0.1,
        seed=seed,
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        disable_tqdm=True,
    )
    SentenceTransformerTrainer(model=model, args=arguments, train_dataset=data, loss=loss).train()
    model.save(str(out))


if __name__ == "__main__":
    main()
