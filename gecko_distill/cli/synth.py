"""Subcommand ``synth`` (E5-mistral synthetic data), registered by :mod:`gecko_distill.cli`.

Library errors (:class:`~gecko_distill.errors.GeckoDistillError`) propagate to ``cli.main``,
which prints them as one line; invalid settings are turned into one.
"""

from __future__ import annotations

import argparse

from .options import add_option

__all__ = ["register", "summary"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` to the ``gecko-distill`` parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="gecko-distill")
        >>> register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["synth", "--out", "runs/synth", "--categories", "sts", "classification"])
        >>> args.categories, args.tasks_per_category, args.llm, args.tasks
        (['sts', 'classification'], 8, 'gemma3-270m', 'both')
    """
    from ..e5.config import DEFAULT_SYNTH_LLM
    from ..e5.prompts import CATEGORIES
    from ..embedder.formatting import QUERY_FORMATS

    p = subparsers.add_parser(
        "synth",
        help="E5-mistral mode: the LLM brainstorms tasks and writes (task, query, positive, hard negative) examples",
        description="Write synthetic training examples with no corpus (Wang et al. 2024). The output folder holds "
        "fret.jsonl, which `gecko-distill train` reads. Rerunning the same command resumes and repeats no LLM call.",
    )
    p.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    p.add_argument(
        "--llm",
        default=DEFAULT_SYNTH_LLM,
        help="teacher: gemma3-270m, smollm2-135m, smollm2-135m-chat, a .gguf file, a model folder, <api>:<model>",
    )
    p.add_argument(
        "--tasks",
        choices=("brainstorm", "builtin", "both"),
        default="both",
        help="where tasks come from: the LLM brainstorms them, the built-in list (10 per category), or both",
    )
    p.add_argument(
        "--tasks-file",
        default=None,
        help="your own tasks instead: a JSON object {category: [task, ...]} or JSON lines "
        '{"category": ..., "task": ...}; --categories defaults to its categories',
    )
    p.add_argument("--tasks-per-category", type=int, default=8, help="tasks per category from each source")
    p.add_argument("--triplets-per-task", type=int, default=2, help="examples written per task")
    p.add_argument(
        "--categories", nargs="+", choices=CATEGORIES, default=None, help="categories of the taxonomy (default: all but bitext)"
    )
    p.add_argument("--languages", nargs="+", default=None, help="languages to draw from (default: English)")
    p.add_argument(
        "--document-words",
        nargs="+",
        type=int,
        default=None,
        help="document lengths to draw from (default: 50 100 200 300 400 500)",
    )
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of both stages (0: greedy)")
    p.add_argument("--max-attempts", type=int, default=2, help="tries per brainstorm call and per example")
    p.add_argument("--max-new-tokens", type=int, default=768, help="token budget of one example")
    p.add_argument(
        "--prompt-style",
        choices=("auto", "completion", "instructions"),
        default="auto",
        help="completion: worked examples to continue, one text at a time, for a local model used as a "
        "text completer; instructions: the paper's prompts, for API and chat models; auto: "
        "completion for a local model without chat template, else instructions",
    )
    add_option(
        p,
        "--input-format",
        dest="query_format",
        deprecated=["--query-format"],
        choices=QUERY_FORMATS,
        default="e5",
        help="e5: 'Instruct: {task}\\nQuery: {query}'; gecko: 'task: {task} | query: {query}'",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the placeholders")
    p.add_argument("--overwrite", action="store_true", help="rebuild stages whose saved output has another config")
    p.set_defaults(func=_run_synth)


def _config(args: argparse.Namespace, tasks: dict[str, list[str]] | None = None):
    from pydantic import ValidationError

    from ..e5.config import SynthConfig, SynthError
    from ..e5.prompts import CATEGORIES

    categories = args.categories or ([c for c in CATEGORIES if c in tasks] if tasks else None)
    settings = {
        "tasks": args.tasks,
        "tasks_per_category": args.tasks_per_category,
        "triplets_per_task": args.triplets_per_task,
        "temperature": args.temperature,
        "max_attempts": args.max_attempts,
        "max_new_tokens": args.max_new_tokens,
        "prompt_style": args.prompt_style,
        "query_format": args.query_format,
        "seed": args.seed,
        "categories": tuple(categories) if categories else None,
        "languages": tuple(args.languages) if args.languages else None,
        "document_words": tuple(args.document_words) if args.document_words else None,
    }
    try:
        return SynthConfig(**{k: v for k, v in settings.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise SynthError(f"invalid synth settings: {problems}") from None


def _teacher(name: str):
    from ..llm.registry import OFFLINE_MODELS, LazyLLM, get_llm

    return LazyLLM(name) if name in OFFLINE_MODELS else get_llm(name)


def _run_synth(args: argparse.Namespace) -> int:
    from ..e5.brainstorm import load_tasks
    from ..e5.synth import generate_triplets

    tasks = load_tasks(args.tasks_file) if args.tasks_file else None
    config = _config(args, tasks)
    result = generate_triplets(_teacher(args.llm), config, tasks=tasks, output_dir=args.out, overwrite=args.overwrite)
    print(summary(result.stats))
    print(f"wrote {len(result.records)} examples to {args.out}/fret.jsonl")
    return 0


def summary(stats: dict) -> str:
    """A small table of a run: items kept, skips by reason, LLM calls, cache hits and tokens,
    then the tasks by source.

    Example:
        >>> print(summary({"brainstorm": {"tasks": 2, "skipped": {}, "llm_calls": 1, "llm_cached": 0,
        ...     "llm_prompt_tokens": 90, "llm_completion_tokens": 30, "wall_time_s": 1.5},
        ...     "triplets": {"examples": 1, "skipped": {"invalid_json": 1}, "llm_calls": 3, "llm_cached": 0,
        ...     "llm_prompt_tokens": 600, "llm_completion_tokens": 200, "wall_time_s": 4.0}}))
        stage       kept  skipped         LLM calls  cached  tokens  wall s
        brainstorm     2  -                       1       0     120     1.5
        triplets       1  invalid_json 1          3       0     800     4.0
        >>> print(summary({"brainstorm": {"tasks": 0}, "triplets": {"examples": 3},
        ...     "tasks_by_source": {"builtin": 2}}).splitlines()[-1])
        tasks: builtin 2
    """
    rows = [("stage", "kept", "skipped", "LLM calls", "cached", "tokens", "wall s")]
    for stage, kept in (("brainstorm", "tasks"), ("triplets", "examples")):
        s = stats[stage]
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(s.get("skipped", {}).items())) or "-"
        tokens = s.get("llm_prompt_tokens", 0) + s.get("llm_completion_tokens", 0)
        rows.append(
            (
                stage,
                str(s[kept]),
                skipped,
                str(s.get("llm_calls", 0)),
                str(s.get("llm_cached", 0)),
                str(tokens),
                f"{s.get('wall_time_s', 0):.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) if i in (0, 2) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    if stats.get("tasks_by_source"):
        lines.append("tasks: " + ", ".join(f"{source} {n}" for source, n in sorted(stats["tasks_by_source"].items())))
    return "\n".join(lines)
