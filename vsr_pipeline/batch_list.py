"""``vsr batch --list FILE``: one input per line, each with its own part, region and output name.

A line is the input's path, then optionally its own flags after it::

    # camera 3: the plate region during the incident; camera 5 twice, two incidents
    /srv/cams/cam3-2026-12-05.mp4 --start 12:01:10 --end 12:01:40 --crop 320:180:840:510
    /srv/cams/cam5-2026-12-05.mp4 --start 1:10:00 --end 1:12:00 --name cam5-first
    /srv/cams/cam5-2026-12-05.mp4 --start 3:02:30 --end 3:03:00 --name cam5-second
    /archive/reel 7.mkv

``--start``, ``--end`` and ``--crop`` mean what they mean to ``vsr upscale`` and override the batch's own;
``--name`` is the output's name in the output folder (the container's extension added), for two lines of
one input. The path is everything before the first `` --``, so a name with spaces needs no quotes (quotes
around it are taken off); the flags are split as a shell would. Blank lines and ``#`` lines are skipped.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsr_pipeline.cli_values import clock_time, crop
from vsr_pipeline.errors import UsageError


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch and what its list line set (None: the batch's own setting)."""

    input: str
    #: the output's name in the output folder, without the container's extension
    name: str | None = None
    start: float | None = None
    end: float | None = None
    crop: tuple[int, ...] | None = None
    #: where it was named: ``FILE:LINE`` of a list, None on the command line
    where: str | None = None

    @property
    def label(self) -> str:
        """The input as errors name it: with its list line where it has one."""
        return f"{self.input} ({self.where})" if self.where else self.input

    def overrides(self) -> dict[str, Any]:
        """The ``UpscaleOptions`` fields this line sets."""
        return {k: v for k, v in (("start", self.start), ("end", self.end), ("crop", self.crop))
                if v is not None}

    def to_json(self) -> dict[str, Any]:
        """What the line set, for the batch report (empty for a bare input)."""
        out: dict[str, Any] = {k: list(v) if k == "crop" else v for k, v in self.overrides().items()}
        return {**out, **({"name": self.name} if self.name else {})}


class _LineParser(argparse.ArgumentParser):
    """argparse for one line's flags, raising instead of printing usage and exiting."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ValueError(message)


def _line_parser() -> _LineParser:
    p = _LineParser(prog="line", add_help=False, allow_abbrev=False)
    p.add_argument("--start", type=clock_time)  # the same value types as vsr upscale's flags
    p.add_argument("--end", type=clock_time)
    p.add_argument("--crop", type=crop)
    p.add_argument("--name")
    return p


def parse_line(text: str, where: str | None = None) -> BatchItem:
    """One list line as a :class:`BatchItem`; ValueError naming what is wrong."""
    path, sep, rest = f" {text.strip()}".partition(" --")  # a line of flags alone: no path
    path = path.strip()
    if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]
    if not path:
        raise ValueError("no input before the flags")
    if not sep:
        return BatchItem(path, where=where)
    try:
        args = _line_parser().parse_args(shlex.split("--" + rest))
    except ValueError as exc:
        raise ValueError(f"{exc} (a line takes --start, --end, --crop and --name)") from None
    name = args.name
    if name is not None and (not name.strip() or Path(name).name != name or name in (".", "..")):
        raise ValueError(f"--name {name!r} must be a file name, not a path")
    return BatchItem(path, name, args.start, args.end, args.crop, where)


def read_list(path: str | Path) -> list[BatchItem]:
    """The inputs of a list file (module docstring); ``UsageError`` naming the line that cannot be read."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--list {path}: {getattr(exc, 'strerror', None) or exc}") from None
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            items.append(parse_line(line, f"{path}:{number}"))
        except ValueError as exc:
            raise UsageError(f"--list {path} line {number}: {exc}") from None
    return items
