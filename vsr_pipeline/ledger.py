"""The resume ledger: which chunks of a job are finished, and the settings that made them.

A job writing ``OUT`` keeps ``.OUT.vsr/`` beside it: ``ledger.json`` and ``segments/`` (one encoded file,
or PNG folder, per finished chunk, each written under a temporary name and renamed). The ledger is
rewritten atomically (temporary file, fsync, rename) after every finished chunk, so a job killed at any
moment leaves a ledger that names only complete segments. A later run with the same settings and the
same input reuses them; anything else starts over and says why. The folder is removed once the output is
complete. A lock file keeps two jobs from writing the same output at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from vsr_pipeline.errors import UsageError

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
MIB = 1 << 20


def job_dir(output: str | os.PathLike[str]) -> Path:
    """``.NAME.vsr`` beside ``output``."""
    out = Path(output)
    return out.parent / f".{out.name}.vsr"


def recorded_setting(output: str | os.PathLike[str], name: str, section: str = "settings") -> Any:
    """A setting (e.g. ``precision``, ``batch``; with ``section="extra"`` the upscaler's ``threads``) an
    unfinished job writing ``output`` recorded in its ledger (None: no ledger, or none recorded): a resumed
    ``auto`` keeps it rather than probing again, since a probe that chose otherwise would make every
    finished chunk be redone (settings) or the rest computed a rounding step apart (threads)."""
    try:
        data = json.loads((job_dir(output) / "ledger.json").read_text(encoding="utf-8"))
        return data[section][name]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def _head_tail_sha256(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(MIB))
        if size > MIB:
            f.seek(max(MIB, size - MIB))
            h.update(f.read(MIB))
    return h.hexdigest()


def input_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, mtime and a hash of the first and last MiB of a file; for a folder, the same of each entry
    hashed together (names, sizes, mtimes, heads/tails)."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        entries = sorted(q for q in p.iterdir() if q.is_file())
        for q in entries:
            st = q.stat()
            h.update(f"{q.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            h.update(_head_tail_sha256(q, st.st_size).encode())
        return {"path": str(p.resolve()), "files": len(entries), "sha256": h.hexdigest()}
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256_head_tail": _head_tail_sha256(p, st.st_size)}


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first differing setting, as words."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key == "input":
                return "the input file changed"
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                return f"{key}: {_diff(old[key], new[key])}"
            return f"{key} changed ({old.get(key)!r} -> {new.get(key)!r})"
    return "settings changed"


class Ledger:
    """Finished chunks of one job (``done``: chunk index -> record) and where their segments live."""

    def __init__(self, output: str | os.PathLike[str], settings: dict[str, Any]):
        self.output = Path(output)
        self.dir = job_dir(self.output)
        self.path = self.dir / "ledger.json"
        self.segments = self.dir / "segments"
        self.settings = settings
        self.done: dict[int, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        self._lock: int | None = None

    @classmethod
    def open(cls, output: str | os.PathLike[str], settings: dict[str, Any], resume: str = "auto") -> Ledger:
        """The ledger of the job writing ``output`` with ``settings`` (JSON-able).

        ``resume``: ``auto`` reuses finished chunks when the recorded settings equal ``settings`` and
        starts over (with a warning saying why) otherwise; ``require`` raises UsageError instead of
        starting over; ``never`` always starts over.
        """
        ledger = cls(output, json.loads(json.dumps(settings, default=str)))
        ledger.dir.mkdir(exist_ok=True)
        ledger._take_lock()
        try:
            reason = ledger._load() if resume != "never" else "--no-resume"
            if reason is not None:
                if resume == "require":
                    raise UsageError(f"cannot resume {ledger.output}: {reason}")
                if reason != "no earlier run":
                    log.warning("%s: starting over: %s", ledger.output, reason)
                ledger.done = {}
                ledger.extra = {}
                shutil.rmtree(ledger.segments, ignore_errors=True)
            elif ledger.done:
                log.warning("%s: resuming: %d chunk(s) already done", ledger.output, len(ledger.done))
            ledger.segments.mkdir(exist_ok=True)
            ledger._drop_leftovers()
            ledger.save()
        except BaseException:
            ledger.release()
            raise
        return ledger

    def _take_lock(self) -> None:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError(f"another vsr job is writing {self.output} (lock {self.dir / 'lock'})") from None
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _load(self) -> str | None:
        """Read the recorded state; returns why it cannot be reused, or None when it can."""
        if not self.path.exists():
            return "no earlier run"
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != LEDGER_VERSION:
                return f"ledger version {data.get('version')} is not {LEDGER_VERSION}"
            if data.get("settings") != self.settings:
                return _diff(data.get("settings") or {}, self.settings)
            done = {int(k): v for k, v in data.get("done", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            return f"the ledger is unreadable ({type(exc).__name__})"
        for index, rec in done.items():
            name = rec.get("file")
            if name is None:  # a chunk whose frames were all skipped
                self.done[index] = rec
                continue
            seg = self.segments / name
            if seg.exists() and _size(seg) == rec.get("bytes"):
                self.done[index] = rec
        self.extra = dict(data.get("extra") or {})
        return None

    def _drop_leftovers(self) -> None:
        """Delete segment files (temporary ones included) that no finished chunk names."""
        named = {rec["file"] for rec in self.done.values() if rec.get("file")}
        for entry in self.segments.iterdir():
            if entry.name not in named:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def segment_path(self, index: int, suffix: str) -> Path:
        """Where chunk ``index``'s segment goes: ``segments/%06d`` plus ``suffix`` (``""`` for a folder)."""
        return self.segments / f"{index:06d}{suffix}"

    def record(self, index: int, start: int, stop: int, file: str | None, frames: int) -> None:
        """Mark chunk ``index`` (core frames ``[start, stop)``) finished and save."""
        seg = None if file is None else self.segments / file
        self.done[index] = {"start": start, "stop": stop, "file": file, "frames": frames,
                            "bytes": None if seg is None else _size(seg)}
        self.save()

    def save(self) -> None:
        data = {"version": LEDGER_VERSION, "output": str(self.output), "settings": self.settings,
                "done": {str(k): v for k, v in sorted(self.done.items())}, "extra": self.extra}
        tmp = self.dir / "ledger.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Delete the job folder (after the output is complete)."""
        self.release()
        shutil.rmtree(self.dir, ignore_errors=True)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(q.stat().st_size for q in path.iterdir())
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return -1
