"""Context-manager behaviour shared by the writers: close on success, abort (delete the partial) on error."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AtomicOutput:
    """Subclasses write to a temporary name; ``close`` renames it into place, ``abort`` deletes it."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
