"""Summaries of results for terminals and notebooks: the stage table of a ``build_fret`` run,
a short ``repr`` and an HTML view of an FRet dataset, and a retrieval report as a table.

Nothing here imports the model code: the functions read a report's fields (``model``,
``scores``...) and a run's statistics, so ``FRetDataset`` and ``RetrievalReport`` call them
from their ``__repr__``, ``_repr_html_`` and ``to_pandas``.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._lazy import require
from .records import FRetExample

__all__ = ["summary_table", "skip_summary", "fret_repr", "fret_html", "report_rows", "report_frame", "report_html"]

#: Characters of a passage or query shown in a ``repr`` or an HTML row.
_CLIP = 80


def skip_summary(skipped: Mapping[str, int]) -> str:
    """Skip counts by reason, most frequent first, or ``"-"`` when there are none.

    Example:
        >>> skip_summary({"empty_text": 1, "duplicate": 3}), skip_summary({})
        ('duplicate 3, empty_text 1', '-')
    """
    return ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1])) or "-"


def _signal_lines(ret: dict[str, Any], rel: dict[str, Any], round1: dict[str, Any] | None = None) -> list[str]:
    """How good the labels look: the miner's seed recall, the teacher check, hubs, negatives.

    Example:
        >>> print("\\n".join(_signal_lines({"seed_in_top_n": 0.8, "top_n": 20, "input_format": "plain"},
        ...     {"rank_by": "ql", "teacher_check": {"queries": 200, "rank_by": "ql", "reason": "ql beats chance",
        ...      "signals": {"ql": {"seed_top1": 0.6, "chance": 0.05, "z": 30.0}}},
        ...      "positives_distinct": 180, "examples": 200, "positives_max_uses": 3, "negatives_distinct": 150,
        ...      "negatives_max_uses": 5, "negative_rejections": {"within_margin": 12}})))
        mining: the seed is among its query's top 20 for 80.0% of queries (plain input)
        teacher check (200 queries): seed ranked first by ql 60% (chance 5%); ranking by ql: ql beats chance
        positives: 180 distinct for 200 examples (at most 3 uses of one); negatives: 150 distinct (at most 5 uses)
        negatives rejected by the false-negative guard: within_margin 12
    """
    lines = []
    if round1 and round1.get("skipped"):
        lines.append(f"round 1: skipped ({round1['skipped']})")
    elif round1 and "seed_in_top_n_before" in round1:
        lines.append(
            f"round 1: miner trained on {round1['pairs']} (query, seed) pairs; seed in top N "
            f"{100 * round1['seed_in_top_n_before']:.1f}% -> {100 * round1['seed_in_top_n_after']:.1f}%"
        )
    if "seed_in_top_n" in ret:
        fmt = f" ({ret['input_format']} input)" if ret.get("input_format") else ""
        lines.append(
            f"mining: the seed is among its query's top {ret.get('top_n', '?')} for {100 * ret['seed_in_top_n']:.1f}% "
            f"of queries{fmt}"
        )
    check = rel.get("teacher_check")
    if check:
        figures = ", ".join(f"{k} {100 * v['seed_top1']:.0f}%" for k, v in check["signals"].items())
        chance = next(iter(check["signals"].values()))["chance"] if check["signals"] else None
        seen = f": seed ranked first by {figures} (chance {100 * chance:.0f}%)" if chance is not None else ""
        lines.append(f"teacher check ({check['queries']} queries){seen}; ranking by {check['rank_by']}: {check['reason']}")
    if "positives_distinct" in rel:
        lines.append(
            f"positives: {rel['positives_distinct']} distinct for {rel.get('examples', '?')} examples (at most "
            f"{rel['positives_max_uses']} uses of one); negatives: {rel['negatives_distinct']} distinct (at most "
            f"{rel['negatives_max_uses']} uses)"
        )
    if rel.get("negative_rejections"):
        lines.append("negatives rejected by the false-negative guard: " + skip_summary(rel["negative_rejections"]))
    return lines


def summary_table(stats: dict[str, Any]) -> str:
    """Render ``FRetDataset.stats`` as a table: per stage, items in and kept, skips by reason,
    LLM calls (and cache hits), tokens, and wall time.

    Example:
        >>> stats = {"corpus": {"read": 3, "passages": 2, "skipped": {"empty_text": 1}},
        ...          "generate": {"passages": 2, "queries": 2, "llm_calls": 2, "llm_cached": 0,
        ...                       "llm_prompt_tokens": 90, "llm_completion_tokens": 20, "wall_time_s": 1.5, "skipped": {}},
        ...          "retrieve": {"queries": 2, "wall_time_s": 0.2, "skipped": {}},
        ...          "relabel": {"queries": 2, "examples": 2, "positive_not_seed": 0.5, "llm_calls": 8,
        ...                      "llm_cached": 0, "llm_prompt_tokens": 400, "wall_time_s": 3.0, "skipped": {}},
        ...          "examples": 2, "wall_time_s": 4.9}
        >>> print(summary_table(stats))  # doctest: +NORMALIZE_WHITESPACE
        stage     in  kept  skipped       LLM calls  cached  tokens  wall s
        corpus     3     2  empty_text 1          -       -       -       -
        generate   2     2  -                     2       0     110     1.5
        retrieve   2     2  -                     -       -       -     0.2
        relabel    2     2  -                     8       0     400     3.0
        examples: 2; positives that are not the seed: 50.0%; total wall time 4.9 s
    """
    corpus, gen, ret, rel = (stats[k] for k in ("corpus", "generate", "retrieve", "relabel"))
    rows = [
        ("corpus", corpus["read"], corpus["passages"], corpus.get("skipped", {}), None),
        ("generate", gen["passages"], gen["queries"], gen.get("skipped", {}), gen),
        ("retrieve", ret["queries"], ret["queries"] - sum(ret.get("skipped", {}).values()), ret.get("skipped", {}), None),
        ("relabel", rel["queries"], rel["examples"], rel.get("skipped", {}), rel),
    ]
    table = [("stage", "in", "kept", "skipped", "LLM calls", "cached", "tokens", "wall s")]
    for name, n_in, kept, skipped, llm in rows:
        tokens = llm and llm.get("llm_prompt_tokens", 0) + llm.get("llm_completion_tokens", 0)
        table.append(
            (
                name,
                str(n_in),
                str(kept),
                skip_summary(skipped),
                str(llm.get("llm_calls", 0)) if llm else "-",
                str(llm.get("llm_cached", 0)) if llm else "-",
                str(tokens) if llm else "-",
                f"{stats[name]['wall_time_s']:.1f}" if "wall_time_s" in stats[name] else "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    align = ["<", ">", ">", "<", ">", ">", ">", ">"]
    lines = ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip() for row in table]
    share = rel.get("positive_not_seed", 0.0)
    lines.append(
        f"examples: {stats['examples']}; positives that are not the seed: {100 * share:.1f}%; "
        f"total wall time {stats['wall_time_s']:.1f} s"
    )
    lines.extend(_signal_lines(ret, rel, stats.get("round1")))
    notes = [n for stage in (gen, rel) for n in stage.get("notes", [])]
    if rel.get("ql_available") is False:
        notes.append("the teacher cannot score query likelihood: positives were ranked by relevance classification only")
    costs = [stage["llm_cost_usd"] for stage in (gen, rel) if stage.get("llm_cost_usd") is not None]
    if costs:
        lines.append(
            f"estimated LLM cost: ${sum(costs):.4f} (generate ${gen.get('llm_cost_usd') or 0:.4f}, "
            f"relabel ${rel.get('llm_cost_usd') or 0:.4f}; cached answers cost nothing)"
        )
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


def _clip(text: str, width: int = _CLIP) -> str:
    return textwrap.shorten(text, width=width, placeholder=" …")


def _headline(examples: Sequence[FRetExample], stats: Mapping[str, Any]) -> str:
    """``N examples from P passages (Q queries); S% of positives are not the seed``, from what is known."""
    parts = [f"{len(examples)} examples"]
    passages = (stats.get("corpus") or {}).get("passages")
    queries = (stats.get("generate") or {}).get("queries")
    if passages is not None:
        parts.append(f"from {passages} passages" + (f" ({queries} queries)" if queries is not None else ""))
    share = (stats.get("relabel") or {}).get("positive_not_seed")
    if share is None and examples:
        share = sum(not e.positive_is_seed for e in examples) / len(examples)
    line = " ".join(parts)
    return line + (f"; {100 * share:.1f}% of positives are not the seed" if share is not None else "")


def fret_repr(
    examples: Sequence[FRetExample], stats: Mapping[str, Any] | None = None, output_dir: str | Path | None = None
) -> str:
    """A few lines for ``repr(fret)``: the counts, and the first example with its texts clipped.

    Args:
        examples: The FRet examples.
        stats: The run's statistics (``FRetDataset.stats``), if known.
        output_dir: Where the run was written, if anywhere.

    Example:
        >>> from gecko_distill.records import FRetExample, Passage
        >>> ex = FRetExample(id="q1", task="Find the command", query="list files",
        ...     positive=Passage(id="ls", title="ls", text="List directory contents. " * 20),
        ...     negative=Passage(id="cp", text="Copy files."), seed_passage_id="ls",
        ...     positive_is_seed=True, positive_ranks={}, negative_ranks={})
        >>> print(fret_repr([ex, ex], {"corpus": {"passages": 5}, "generate": {"queries": 4}}, "runs/fret"))
        FRetDataset: 2 examples from 5 passages (4 queries); 0.0% of positives are not the seed; output_dir='runs/fret'
        [0] task: Find the command
            query: list files
            positive: ls (the seed) 'ls | List directory contents. List directory contents. List directory …'
            negative: cp 'Copy files.'
        ... 1 more (fret[i] for a record, fret.stats for the statistics)
    """
    stats = stats or {}
    where = f"; output_dir={str(output_dir)!r}" if output_dir is not None else ""
    lines = [f"FRetDataset: {_headline(examples, stats)}{where}"]
    if examples:
        first = examples[0]
        lines += [
            f"[0] task: {_clip(first.task)}",
            f"    query: {_clip(first.query)}",
            f"    positive: {first.positive.id}{' (the seed)' if first.positive_is_seed else ''} {_passage_text(first.positive)!r}",
            f"    negative: {first.negative.id} {_passage_text(first.negative)!r}",
        ]
    if len(examples) > 1:
        lines.append(f"... {len(examples) - 1} more (fret[i] for a record, fret.stats for the statistics)")
    return "\n".join(lines)


def _passage_text(passage: Any) -> str:
    return _clip(f"{passage.title} | {passage.text}" if passage.title else passage.text)


def fret_html(
    examples: Sequence[FRetExample],
    stats: Mapping[str, Any] | None = None,
    output_dir: str | Path | None = None,
    *,
    max_rows: int = 5,
) -> str:
    """An HTML view of an FRet dataset for notebooks: the counts, and the first ``max_rows``
    examples as a table (task, query, positive, negative, whether the positive is the seed).

    Example:
        >>> from gecko_distill.records import FRetExample, Passage
        >>> ex = FRetExample(id="q1", task="Find <b>", query="list files",
        ...     positive=Passage(id="ls", text="List directory contents."), negative=Passage(id="cp", text="Copy files."),
        ...     seed_passage_id="ls", positive_is_seed=True, positive_ranks={}, negative_ranks={})
        >>> page = fret_html([ex])
        >>> "<td>Find &lt;b&gt;</td>" in page, page.count("<tr>")
        (True, 2)
    """
    stats = stats or {}
    where = f" &middot; <code>{html.escape(str(output_dir))}</code>" if output_dir is not None else ""
    header = "".join(f"<th>{name}</th>" for name in ("#", "task", "query", "positive", "negative", "seed?"))
    rows = [f"<tr>{header}</tr>"]
    for i, e in enumerate(examples[:max_rows]):
        cells = (
            str(i),
            _clip(e.task),
            _clip(e.query),
            f"{e.positive.id}: {_passage_text(e.positive)}",
            f"{e.negative.id}: {_passage_text(e.negative)}",
            "yes" if e.positive_is_seed else "no",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    more = f"<p>… {len(examples) - max_rows} more</p>" if len(examples) > max_rows else ""
    return (
        f"<div><p><b>FRetDataset</b>: {html.escape(_headline(examples, stats))}{where}</p>"
        f"<table>{''.join(rows)}</table>{more}</div>"
    )


def report_rows(report: Any) -> list[dict[str, Any]]:
    """One row per dimension of a ``RetrievalReport``: model, dataset, input format, dim and metrics.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> score = NS(model_dump=lambda: {"dim": 64, "ndcg_at_10": 0.5})
        >>> report_rows(NS(model="m", dataset="d", config=NS(input_format="plain"), scores=[score]))
        [{'model': 'm', 'dataset': 'd', 'input_format': 'plain', 'dim': 64, 'ndcg_at_10': 0.5}]
    """
    about = {"model": report.model, "dataset": report.dataset, "input_format": report.config.input_format}
    return [{**about, **score.model_dump()} for score in report.scores]


def report_frame(report: Any) -> Any:
    """A ``RetrievalReport`` as a ``pandas.DataFrame``, one row per dimension (see
    :func:`report_rows`); ``pandas.concat`` of several compares models.

    Raises:
        MissingDependencyError: pandas is not installed.
    """
    pandas = require("pandas", "pandas")
    return pandas.DataFrame(report_rows(report))


def _metric_label(name: str) -> str:
    """``ndcg_at_10`` -> ``nDCG@10``.

    Example:
        >>> _metric_label("ndcg_at_10"), _metric_label("recall_at_100"), _metric_label("dim")
        ('nDCG@10', 'Recall@100', 'dim')
    """
    metric, _, k = name.partition("_at_")
    label = {"ndcg": "nDCG", "mrr": "MRR", "recall": "Recall", "map": "MAP", "precision": "P"}.get(metric, metric)
    return f"{label}@{k}" if k else label


def report_html(report: Any) -> str:
    """An HTML table of a ``RetrievalReport`` for notebooks: one row per dimension.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> score = NS(model_dump=lambda: {"dim": 384, "ndcg_at_10": 0.78123})
        >>> page = report_html(NS(model="base", dataset="manpages", config=NS(input_format="plain"),
        ...                       num_queries=600, num_corpus=1024, scores=[score]))
        >>> "<th>nDCG@10</th>" in page, "<td>0.7812</td>" in page
        (True, True)
    """
    rows = [score.model_dump() for score in report.scores]
    names = list(rows[0]) if rows else ["dim"]
    header = "<tr>" + "".join(f"<th>{html.escape(_metric_label(n))}</th>" for n in names) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{row[n] if n == 'dim' else f'{row[n]:.4f}'}</td>" for n in names) + "</tr>" for row in rows
    )
    about = (
        f"<b>{html.escape(str(report.model))}</b> on <code>{html.escape(str(report.dataset))}</code>: "
        f"{report.num_queries} queries, {report.num_corpus} documents, {html.escape(str(report.config.input_format))} input"
    )
    return f"<div><p>{about}</p><table>{header}{body}</table></div>"
