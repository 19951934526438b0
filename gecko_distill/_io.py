"""jsonl reading/writing, manifests, output-folder locking, and the per-stage checkpoint that
makes runs resumable.

A stage folder holds ``records.jsonl`` (one record per finished item), ``skips.jsonl`` (one
line per counted skip) and ``manifest.json``. Records are appended and flushed as items
finish, so a killed run loses at most the item in flight; the manifest's ``fingerprint``
(hash of the stage config, the backend identities and the stage's input) decides whether the
folder may be resumed. A folder written under another fingerprint is refused, never reused.

A run holds its output folder's lock (:func:`lock_output_folder`), so two runs never append
to the same stage files; the kernel drops the lock when the process ends, however it ends.

Every manifest also records the run's :func:`environment_record` (package versions, command
line, time), for reproducibility; it never enters a fingerprint, so a folder written with
another torch version or at another time is still resumed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from ._quiet import bars_enabled
from ._version import __version__
from .config import describe_config_change
from .errors import GeckoDistillError, InputError, OutputFolderInUseError, StaleOutputError
from .records import Record, Skip

__all__ = [
    "read_jsonl",
    "write_jsonl",
    "fingerprint",
    "fingerprinted",
    "environment_record",
    "progress",
    "StageCheckpoint",
    "StageResult",
    "lock_output_folder",
    "filesystem_errors",
    "RETRIED_SKIP_REASONS",
    "PERMANENT_LLM_ERRORS",
]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)


def progress(total: int, desc: str, unit: str):
    """A tqdm progress bar for a long stage, drawn only where :func:`~gecko_distill._quiet.bars_enabled`
    says (a terminal or a notebook, and not ``$GECKO_DISTILL_NO_PROGRESS``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not bars_enabled())


def read_jsonl(path: str | Path, record_type: type[R]) -> list[R]:
    """Read a jsonl file of ``record_type``; any bad line is an :class:`InputError` naming it."""
    return _validated(Path(path), _json_lines(Path(path)), record_type)


def _validated(path: Path, lines: Iterable[tuple[int, Any]], record_type: type[R]) -> list[R]:
    records = []
    for line_no, obj in lines:
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


def _json_lines(path: Path, raw: bytes | None = None) -> Iterator[tuple[int, Any]]:
    """The parsed JSON of each non-blank line of ``path`` (or of ``raw``, its bytes)."""
    if raw is None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder, not a file") from None
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
    results), and the fields its ``_added_fields`` maps to the value that behaves as before the
    field existed, while they hold that value; :func:`fingerprinted` gives that JSON."""
    canonical = json.dumps(fingerprinted(list(parts)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fingerprinted(obj: Any) -> Any:
    """``obj`` as the plain JSON values that :func:`fingerprint` hashes: pydantic models field by
    field, without their ``_not_in_fingerprint`` fields. A stage manifest keeps its settings
    this way, so that a refused folder can name what changed.

    Example:
        >>> from gecko_distill.config import RetrieveConfig
        >>> fingerprinted({"retrieve": RetrieveConfig(top_n=8), "teacher": "gemma"})["retrieve"]["top_n"]
        8
    """
    if isinstance(obj, BaseModel):
        skip = getattr(type(obj), "_not_in_fingerprint", frozenset())
        # a field added later is left out at the value that behaves as before, so folders written
        # before it existed still resume
        added = getattr(type(obj), "_added_fields", {})
        return {
            name: fingerprinted(getattr(obj, name))
            for name in type(obj).model_fields
            if name not in skip and not (name in added and getattr(obj, name) == added[name])
        }
    if isinstance(obj, (list, tuple)):
        return [fingerprinted(o) for o in obj]
    if isinstance(obj, dict):
        return {str(k): fingerprinted(v) for k, v in obj.items()}
    return to_jsonable_python(obj)


#: The packages whose versions a manifest records, by distribution name; faiss ships under
#: several names, and the first one installed is recorded.
_RECORDED_PACKAGES = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "sentence_transformers": ("sentence-transformers",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss"),
}


def environment_record() -> dict[str, Any]:
    """What a manifest records about the run, for reproducibility: the versions of python,
    gecko_distill, torch, transformers, sentence-transformers and faiss (``None`` for one that
    is not installed), the command line and the UTC time.

    It is read from the installed packages' metadata, so nothing heavy is imported. It is
    provenance, not configuration: it never enters a :func:`fingerprint`.

    Example:
        >>> record = environment_record()
        >>> sorted(record["versions"])
        ['faiss', 'gecko_distill', 'python', 'sentence_transformers', 'torch', 'transformers']
        >>> record["created_utc"].endswith("Z"), isinstance(record["command"], list)
        (True, True)
    """
    versions: dict[str, str | None] = {"python": platform.python_version(), "gecko_distill": __version__}
    for name, distributions in _RECORDED_PACKAGES.items():
        versions[name] = next((v for v in map(_installed_version, distributions) if v is not None), None)
    program = [Path(sys.argv[0]).name] if sys.argv and sys.argv[0] else []
    return {
        "versions": versions,
        "command": program + redacted_arguments(sys.argv[1:]),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


#: Options whose value is a credential (``--token``, ``--api-key``...), but not the name of
#: the environment variable that holds one (``--llm-api-key-env``).
_SECRET_OPTION = re.compile(r"--[\w-]*(key|token|secret|password)", re.IGNORECASE)


def redacted_arguments(arguments: Sequence[str]) -> list[str]:
    """Command-line arguments with the value of any credential option replaced by ``***``.

    Example:
        >>> redacted_arguments(["push", "--token", "hf_abc", "--api-key=sk-1", "--llm-api-key-env", "KEY"])
        ['push', '--token', '***', '--api-key=***', '--llm-api-key-env', 'KEY']
    """
    out: list[str] = []
    secret_next = False
    for argument in arguments:
        name, equals, _ = argument.partition("=")
        if secret_next:
            out.append("***")
        elif equals and _SECRET_OPTION.fullmatch(name):
            out.append(f"{name}=***")
        else:
            out.append(argument)
        secret_next = not secret_next and not equals and bool(_SECRET_OPTION.fullmatch(argument))
    return out


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class StageResult(Generic[R]):
    """What a stage returns: its records in input order, its skips, and its statistics."""

    records: list[R]
    skips: list[Skip] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skips))


#: Skip reasons that a rerun retries instead of keeping: the LLM call failed (a server error,
#: a rate limit, no network, a wrong key...), which says nothing about the item itself.
RETRIED_SKIP_REASONS = frozenset({"llm_error"})

#: Error reasons (see :func:`gecko_distill.llm.cost.error_reason`) that are permanent refusals:
#: such an item is skipped under that reason (e.g. ``safety_blocked``), not as ``llm_error``,
#: and kept on a rerun.
PERMANENT_LLM_ERRORS = frozenset({"safety_blocked"})

_STAGE_FILES = ("records.jsonl", "skips.jsonl", "manifest.json")
LOCK_FILE = ".lock"


@contextmanager
def lock_output_folder(folder: str | Path) -> Iterator[bool]:
    """Hold ``folder``'s lock while a run uses it; yields whether the folder is writable.

    The folder is created if needed. The lock is an exclusive ``flock`` on ``folder/.lock``:
    the kernel releases it when the holder exits, however it exits, so the lock of a killed
    run never blocks the next one. A folder that cannot be written (read-only) is locked
    shared, when its lock file exists, and yields ``False``: a finished run there can still
    be read, but nothing can be written.

    Raises:
        InputError: ``folder`` is a file, or cannot be created.
        OutputFolderInUseError: Another run holds the lock.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with lock_output_folder(folder) as writable:
        ...     try:
        ...         with lock_output_folder(folder):
        ...             pass
        ...     except OutputFolderInUseError as exc:
        ...         print("in use:", "another run" in str(exc))
        in use: True
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not an output folder; pass a folder path (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from None
    path = folder / LOCK_FILE
    writable = True
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise InputError(f"{path}: cannot open the output folder's lock file: {exc.strerror or exc}") from None
        writable = False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            fd = -1  # a read-only folder without a lock file: no run can write there either
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if writable else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputFolderInUseError(
                    f"{folder}: another run is using this output folder (it holds {path}); "
                    "wait for it to finish, or use another output folder"
                ) from None
        yield writable
    finally:
        if fd >= 0:
            os.close(fd)  # closing the only descriptor releases the lock


@contextmanager
def filesystem_errors() -> Iterator[None]:
    """Turn an ``OSError`` about a path (permission denied, read-only file system, a folder
    where a file should be, a full disk...) into one :class:`InputError` naming the path.

    Example:
        >>> with filesystem_errors():
        ...     open("/nonexistent-folder/x.txt")
        Traceback (most recent call last):
        ...
        gecko_distill.errors.InputError: /nonexistent-folder/x.txt: No such file or directory
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None or isinstance(exc, GeckoDistillError):
            raise
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from exc


def _writable(path: Path) -> bool:
    """Whether files can be made in ``path`` (or, if it does not exist yet, in its nearest parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK | os.X_OK)


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """A manifest, and ``""``; or ``{}`` and what is wrong with a damaged one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"unreadable ({exc})"
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"damaged (invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno})"
    if not isinstance(manifest, dict):
        return {}, "damaged (not a JSON object)"
    return manifest, ""


class StageCheckpoint(Generic[R]):
    """Records of one stage, kept in memory and, with a folder, appended to disk as they finish.

    Opening a folder checks it before it is used:

    * skips for a failed LLM call (:data:`RETRIED_SKIP_REASONS`: a server error, no network,
      a wrong key...) are dropped, so a rerun retries those items; a permanent refusal such
      as a safety block is kept, counted under its own reason (``safety_blocked``);
    * a finished stage is compared with its manifest's counts: if records are missing (a
      damaged ``records.jsonl``), or failed items are to be retried, the stage is reopened and
      only the missing items are redone; :meth:`expect` reopens it as well when its input has
      new items (an upstream stage retried some);
    * a damaged manifest, a file where the folder should be, or a folder where a stage file
      should be, is an :class:`InputError` naming the path;
    * a read-only folder may be read when its stage is finished (nothing is retried or
      redone, with a warning); otherwise it is an :class:`InputError`.

    Args:
        stage: Stage name, e.g. ``"generate"``.
        record_type: The record class written by the stage.
        key: Returns the input item id a record answers (e.g. the passage id of a query).
        folder: Where to write; ``None`` keeps everything in memory.
        fingerprint: Identity of config + inputs; a folder with another one is refused.
        overwrite: Delete a stale (or damaged) folder instead of refusing it.
        settings: What the fingerprint is made of, readably (the stage's config, backend
            names, the settings of the stages before it: ``{"retrieve": RetrieveConfig(...),
            "teacher": ...}``), kept in the manifest as :func:`fingerprinted` JSON. A folder
            refused as stale then names the fields that changed (``retrieve.top_n: 8 → 6``);
            a folder whose manifest has no settings (written by an older version) is named by
            its fingerprints.
    """

    def __init__(
        self,
        stage: str,
        record_type: type[R],
        key: Any,
        folder: str | Path | None = None,
        fingerprint: str = "",
        overwrite: bool = False,
        settings: Any = None,
    ):
        self.stage = stage
        self.record_type = record_type
        self.key = key
        self.folder = Path(folder) if folder is not None else None
        self.fingerprint = fingerprint
        self.settings = fingerprinted(settings) if settings is not None else None
        self.records: list[R] = []
        self.skips: list[Skip] = []
        self.complete = False
        self.resumed = 0
        self.writable = True
        self._finished_manifest: dict[str, Any] = {}
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
        if reason == "llm_error":
            from .llm.cost import error_reason

            code = error_reason(detail)
            if code in PERMANENT_LLM_ERRORS:
                reason = code  # a refusal, not a failure: kept, and counted as what it is
        skip = Skip(stage=self.stage, item_id=item_id, reason=reason, detail=detail[:300])
        logger.info("%s: skipped %s (%s) %s", self.stage, item_id, reason, skip.detail)
        self.skips.append(skip)
        self._append("skips.jsonl", skip)

    def expect(self, item_ids: Iterable[str]) -> int:
        """Reopen a finished stage if some of ``item_ids`` (its input) are not done yet, e.g.
        because an upstream stage retried failed items; only those are then done.

        Returns:
            The number of items not done yet.
        """
        done = self.done_ids
        missing = sum(1 for item_id in item_ids if item_id not in done)
        if missing:
            self.reopen(f"{missing} items of its input are new (an earlier stage redid failed items)")
        return missing

    def reopen(self, why: str) -> None:
        """Let a finished stage take more items (its records stay done); ``why`` is logged.

        The manifest says ``running`` until :meth:`finish`, so a run killed meanwhile resumes
        the stage. Nothing happens to a stage that is not finished, or in a read-only folder
        (with a warning)."""
        if not self.complete:
            return
        if self.folder is None:
            self.complete = False
            return
        if not self.writable:
            logger.warning(
                "%s: stage '%s': %s; but the folder is read-only, so it is used as it is", self.folder, self.stage, why
            )
            return
        logger.warning("%s: reopening the finished stage '%s': %s", self.folder, self.stage, why)
        self.complete = False
        self._finished_manifest = {}
        self._write_manifest("running", StageResult(records=[]), None)

    def finish(self, order: Iterable[str], stats: dict[str, Any], config: Any = None) -> StageResult[R]:
        """Mark the stage complete, write the manifest, and return records in ``order``."""
        rank = {item_id: i for i, item_id in enumerate(order)}
        self.records.sort(key=lambda r: rank.get(self.key(r), len(rank)))
        if self.complete:  # finished by an earlier run: its statistics, and no LLM calls now
            recorded = self._finished_manifest.get("stats", {}) if self.folder is not None else {}
            stats = {k: (0 if k.startswith("llm_") else v) for k, v in recorded.items()}
            stats.update(reused=True, wall_time_s=round(time.perf_counter() - self._started, 3))
        else:
            stats = {**stats, "wall_time_s": round(stats.get("wall_time_s", time.perf_counter() - self._started), 3)}
        result = StageResult(records=self.records, skips=self.skips, stats=stats)
        if self.skips and not self.complete:
            where = f" (details in {self.folder / 'skips.jsonl'})" if self.folder is not None else ""
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.skip_counts.items()))
            retried = sum(n for reason, n in result.skip_counts.items() if reason in RETRIED_SKIP_REASONS)
            again = f"; rerun to retry the {retried} failed LLM calls" if retried and self.folder is not None else ""
            logger.warning("%s: skipped %d items: %s%s%s", self.stage, len(self.skips), reasons, where, again)
        if self.folder is not None and not self.complete:
            self._write_manifest("complete", result, config)
        self.complete = True
        return result

    # -- disk ----------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """The stage's manifest on disk (``{}`` if there is none, or it is damaged)."""
        assert self.folder is not None
        return _read_manifest(self.folder / "manifest.json")[0]

    def _open(self, overwrite: bool) -> None:
        assert self.folder is not None
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"{folder}: is a file, but the '{self.stage}' stage keeps its output in a folder there; "
                "move the file away, or use another output folder"
            )
        for name in _STAGE_FILES:
            if (folder / name).is_dir():
                raise InputError(f"{folder / name}: is a folder, but the '{self.stage}' stage keeps a file there; remove it")
        existing, damage = _read_manifest(folder / "manifest.json")
        has_files = folder.exists() and any(folder.iterdir())
        if has_files and (damage or existing.get("fingerprint") != self.fingerprint):
            if not overwrite:
                if damage:
                    raise InputError(
                        f"{folder / 'manifest.json'}: the '{self.stage}' stage manifest is {damage}, so its output cannot "
                        "be checked. Pass overwrite=True (CLI: --overwrite) to rebuild the stage (cached LLM answers are "
                        "not asked again), or use a new output folder."
                    )
                why = "it has no manifest" if not existing else f"it was written with {self._change_from(existing)}"
                raise StaleOutputError(
                    f"{folder}: refusing to reuse the '{self.stage}' stage output, because {why}. "
                    "Use a new output folder, or pass overwrite=True (CLI: --overwrite) to rebuild it."
                )
            why = "its manifest is damaged" if damage else "it has no manifest" if not existing else self._change_from(existing)
            logger.warning("%s: rebuilding stage '%s' (%s)", folder, self.stage, why)
            self._require_writable("rebuild")
            shutil.rmtree(folder)
            existing = {}
        self.writable = _writable(folder)
        complete = existing.get("status") == "complete" and existing.get("fingerprint") == self.fingerprint
        if not complete:
            self._require_writable("write")
        folder.mkdir(parents=True, exist_ok=True)
        self.records = self._load("records.jsonl", self.record_type)
        self.skips = self._load("skips.jsonl", Skip)
        self.complete = complete
        if complete:
            self._finished_manifest = existing
        retry = [s for s in self.skips if s.reason in RETRIED_SKIP_REASONS]
        problems = []
        counts = existing.get("counts") or {}
        if complete and (counts.get("records"), counts.get("skips")) != (len(self.records), len(self.skips)):
            problems.append(
                f"its manifest counts {counts.get('records')} records and {counts.get('skips')} skips, but "
                f"{len(self.records)} and {len(self.skips)} are on disk (a damaged file?): the missing items are redone"
            )
        if retry:
            problems.append(f"{len(retry)} items whose LLM call failed are retried")
        if problems and not self.writable:
            logger.warning(
                "%s: stage '%s': %s; but the folder is read-only, so it is used as it is", folder, self.stage, "; ".join(problems)
            )
        elif retry:
            self.skips = [s for s in self.skips if s.reason not in RETRIED_SKIP_REASONS]
            write_jsonl(folder / "skips.jsonl", self.skips)
        self.resumed = len(self.records) + len(self.skips)
        if self.complete and problems and self.writable:
            self.reopen("; ".join(problems))
        elif self.complete:
            logger.info("%s: stage '%s' already complete (%d records), reusing it", folder, self.stage, len(self.records))
        elif self.resumed or retry:
            why = f" ({problems[-1]})" if retry else ""
            logger.info("%s: resuming stage '%s' after %d finished items%s", folder, self.stage, self.resumed, why)
        if not existing:
            self._write_manifest("running", StageResult(records=[]), None)

    def _change_from(self, existing: dict[str, Any]) -> str:
        """What differs between a stale folder's manifest and this run: the changed settings
        (``other settings (retrieve.top_n: 8 → 6)``), else the two fingerprints (a manifest
        without settings, or a change the settings do not show)."""
        old = existing.get("settings")
        if isinstance(old, dict) and self.settings is not None:
            change = describe_config_change(old, self.settings)
            if change:
                return f"other settings ({change})"
        return f"another config or input (fingerprint {str(existing.get('fingerprint', '?'))[:12]}, now {self.fingerprint[:12]})"

    def _require_writable(self, what: str) -> None:
        assert self.folder is not None
        if not _writable(self.folder):
            raise InputError(
                f"{self.folder}: cannot {what} the '{self.stage}' stage output there: the folder is read-only "
                "(or you have no permission to write it); use another output folder"
            )

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
            raw = raw[:cut]
            if self.writable:
                with path.open("r+b") as f:
                    f.truncate(cut)
        seen: dict[str, Any] = {}
        for record in _validated(path, _json_lines(path, raw), record_type):
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
            "settings": self.settings,
            "library_version": __version__,
            "environment": environment_record(),
            "config": config.model_dump(mode="json") if isinstance(config, BaseModel) else config,
            "counts": {"records": len(result.records), "skips": len(result.skips)},
            "skips_by_reason": result.skip_counts,
            "stats": result.stats,
        }
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.folder / "manifest.json")
