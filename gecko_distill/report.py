"""A plain-text summary table of a ``build_fret`` run, from its statistics."""

from __future__ import annotations

from typing import Any

__all__ = ["summary_table"]


def _skips(skipped: dict[str, int]) -> str:
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
        lines.append(f"round 1: miner trained on {round1['pairs']} (query, seed) pairs; seed in top N "
                     f"{100 * round1['seed_in_top_n_before']:.1f}% -> {100 * round1['seed_in_top_n_after']:.1f}%")
    if "seed_in_top_n" in ret:
        fmt = f" ({ret['input_format']} input)" if ret.get("input_format") else ""
        lines.append(f"mining: the seed is among its query's top {ret.get('top_n', '?')} for {100 * ret['seed_in_top_n']:.1f}% "
                     f"of queries{fmt}")
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
        lines.append("negatives rejected by the false-negative guard: " + _skips(rel["negative_rejections"]))
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
                _skips(skipped),
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
        lines.append(f"estimated LLM cost: ${sum(costs):.4f} (generate ${gen.get('llm_cost_usd') or 0:.4f}, "
                     f"relabel ${rel.get('llm_cost_usd') or 0:.4f}; cached answers cost nothing)")
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)
