"""jsonl reading/writing, manifests, and the per-stage checkpoint that makes runs resumable.

A stage folder holds ``records.jsonl`` (one record per finished item), ``skips.jsonl`` (one
line per counted skip) and ``manifest.json``. Records are appended and flushed as items
finish, so a killed run loses at most the item in flight; the manifest's ``fingerprint``
(hash of the stage config, the backend identities and the stage's input) decides whether the
folder may be resumed. A folder written under another fingerprint is refused, never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from ._version import __version__
from .errors import InputError, StaleOutputError
from .records import Record, Skip

__all__ = ["read_jsonl", "write_jsonl", "fingerprint", "progress", "progress_enabled", "StageCheckpoint", "StageResult"]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)


def progress_enabled() -> bool:
    """Progress bars are shown unless ``GECKO_DISTILL_NO_PROGRESS`` is set."""
    return not os.environ.get("GECKO_DISTILL_NO_PROGRESS")


def progress(total: int, desc: str, unit: str):
    """A tqdm progress bar for a long stage (see :func:`progress_enabled`)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled())


def read_jsonl(path: str | Path, record_type: type[R]) -> list[R]:
    """Read a jsonl file of ``record_type``; any bad line is an :class:`InputError` naming it."""
    path = Path(path)
    records = []
    for line_no, obj in _json_lines(path):
        try:
            records.append(record_type.model_validate(obj))
        except ValidationError as exc:
            raise InputError(f"{path}:{line_no}: not a valid {record_type.__name__}: {_short(exc)}") from None
    return records


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> None:
    """Write records as jsonl atomically (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(record.model_dump_json() + "\n")
    os.replace(tmp, path)


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{line_no}: not valid UTF-8 (byte offset {exc.start} in the line)") from None
        try:
            yield line_no, json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line_no}: invalid JSON: {exc.msg} (column {exc.colno})") from None


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()[:3])


def fingerprint(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``.

    Pydantic models are dumped field by field, leaving out the fields a model lists in its
    ``_not_in_fingerprint`` class variable (settings such as batch sizes, which do not change
    results)."""

    def plain(obj: Any) -> Any:
        if isinstance(obj, BaseModel):
            skip = getattr(type(obj), "_not_in_fingerprint", frozenset())
            return {name: plain(getattr(obj, name)) for name in type(obj).model_fields if name not in skip}
        if isinstance(obj, (list, tuple)):
            return [plain(o) for o in obj]
        if isinstance(obj, dict):
            return {str(k): plain(v) for k, v in obj.items()}
        return to_jsonable_python(obj)

    canonical = json.dumps([plain(p) for p in parts], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class StageResult(Generic[R]):
    """What a stage returns: its records in input order, its skips, and its statistics."""

    records: list[R]
    skips: list[Skip] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skips))


class StageCheckpoint(Generic[R]):
    """Records of one stage, kept in memory and, with a folder, appended to disk as they finish.

    Args:
        stage: Stage name, e.g. ``"generate"``.
        record_type: The record class written by the stage.
        key: Returns the input item id a record answers (e.g. the passage id of a query).
        folder: Where to write; ``None`` keeps everything in memory.
        fingerprint: Identity of config + inputs; a folder with another one is refused.
        overwrite: Delete a stale folder instead of refusing it.
    """

    def __init__(
        self,
        stage: str,
        record_type: type[R],
        key: Any,
        folder: str | Path | None = None,
        fingerprint: str = "",
        overwrite: bool = False,
    ):
        self.stage = stage
        self.record_type = record_type
        self.key = key
        self.folder = Path(folder) if folder is not None else None
        self.fingerprint = fingerprint
        self.records: list[R] = []
        self.skips: list[Skip] = []
        self.complete = False
        self.resumed = 0
        self._started = time.perf_counter()
        if self.folder is not None:
            self._open(overwrite)

    # -- public --------------------------------------------------------------------------
    @property
    def done_ids(self) -> set[str]:
        return {self.key(r) for r in self.records} | {s.item_id for s in self.skips}

    def add(self, record: R) -> None:
        self.records.append(record)
        self._append("records.jsonl", record)

    def skip(self, item_id: str, reason: str, detail: str = "") -> None:
        skip = Skip(stage=self.stage, item_id=item_id, reason=reason, detail=detail[:300])
        logger.info("%s: skipped %s (%s) %s", self.stage, item_id, reason, skip.detail)
        self.skips.append(skip)
        self._append("skips.jsonl", skip)

    def finish(self, order: Iterable[str], stats: dict[str, Any], config: Any = None) -> StageResult[R]:
        """Mark the stage complete, write the manifest, and return records in ``order``."""
        rank = {item_id: i for i, item_id in enumerate(order)}
        self.records.sort(key=lambda r: rank.get(self.key(r), len(rank)))
        if self.complete:  # finished by an earlier run: its statistics, and no LLM calls now
            recorded = self.manifest.get("stats", {}) if self.folder is not None else {}
            stats = {k: (0 if k.startswith("llm_") else v) for k, v in recorded.items()}
            stats.update(reused=True, wall_time_s=round(time.perf_counter() - self._started, 3))
        else:
            stats = {**stats, "wall_time_s": round(stats.get("wall_time_s", time.perf_counter() - self._started), 3)}
        result = StageResult(records=self.records, skips=self.skips, stats=stats)
        if self.skips and not self.complete:
            where = f" (details in {self.folder / 'skips.jsonl'})" if self.folder is not None else ""
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.skip_counts.items()))
            logger.warning("%s: skipped %d items: %s%s", self.stage, len(self.skips), reasons, where)
        if self.folder is not None and not self.complete:
            self._write_manifest("complete", result, config)
        self.complete = True
        return result

    # -- disk ----------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        assert self.folder is not None
        path = self.folder / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _open(self, overwrite: bool) -> None:
        assert self.folder is not None
        existing = self.manifest
        has_files = self.folder.exists() and any(self.folder.iterdir())
        if has_files and existing.get("fingerprint") != self.fingerprint:
            if not overwrite:
                why = (
                    "it has no manifest"
                    if not existing
                    else f"it was written with another config or input (fingerprint {existing.get('fingerprint', '?')[:12]}, "
                    f"now {self.fingerprint[:12]})"
                )
                raise StaleOutputError(
                    f"{self.folder}: refusing to reuse the '{self.stage}' stage output, because {why}. "
                    "Use a new output folder, or pass overwrite=True (CLI: --overwrite) to rebuild it."
                )
            logger.warning("%s: config changed, rebuilding stage '%s'", self.folder, self.stage)
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.records = self._load("records.jsonl", self.record_type)
        self.skips = self._load("skips.jsonl", Skip)
        self.complete = existing.get("status") == "complete" and existing.get("fingerprint") == self.fingerprint
        self.resumed = len(self.records) + len(self.skips)
        if self.complete:
            logger.info("%s: stage '%s' already complete (%d records), reusing it", self.folder, self.stage, len(self.records))
        elif self.resumed:
            logger.info("%s: resuming stage '%s' after %d finished items", self.folder, self.stage, self.resumed)
        if not existing:
            self._write_manifest("running", StageResult(records=[]), None)

    def _load(self, name: str, record_type: type[BaseModel]) -> list:
        assert self.folder is not None
        path = self.folder / name
        if not path.exists():
            return []
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            # A run killed mid-write leaves a partial last line: drop it, the item is redone.
            cut = raw.rfind(b"\n") + 1
            logger.warning("%s: dropping a partial last line left by an interrupted run", path)
            with path.open("r+b") as f:
                f.truncate(cut)
        seen: dict[str, Any] = {}
        for record in read_jsonl(path, record_type):
            seen[self._identity(record)] = record  # a duplicate line (should not happen) counts once
        return list(seen.values())

    def _identity(self, record: BaseModel) -> str:
        if isinstance(record, Skip):
            return record.item_id
        return getattr(record, "id", None) or self.key(record)

    def _append(self, name: str, record: BaseModel) -> None:
        if self.folder is None:
            return
        with (self.folder / name).open("a", encoding="utf-8") as f:
            f.write(record.model_dump_json() + "\n")
            f.flush()

    def _write_manifest(self, status: str, result: StageResult, config: Any) -> None:
        assert self.folder is not None
        manifest = {
            "stage": self.stage,
            "status": status,
            "fingerprint": self.fingerprint,
            "library_version": __version__,
            "config": config.model_dump(mode="json") if isinstance(config, BaseModel) else config,
            "counts": {"records": len(result.records), "skips": len(result.skips)},
            "skips_by_reason": result.skip_counts,
            "stats": result.stats,
        }
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.folder / "manifest.json")
