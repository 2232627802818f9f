"""Upscaler actor: the inference engine (``vsr_pipeline.engine.Engine``) held in a Ray actor.

The actor keeps the model loaded between chunks; everything it computes is ``Engine``'s, which tests and the
live-stream executor call without Ray. This shell only adds which Ray node it runs on to ``stats``, and
whether Ray restarted it (a restarted actor has used up part of its restart budget).
"""

from __future__ import annotations

from vsr_pipeline.cluster import actor_restarted
from vsr_pipeline.engine import Engine


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # pragma: no cover - an old Ray without the runtime context
        return None


class Upscaler(Engine):
    """``Engine`` in a Ray actor (``ray.remote(Upscaler)``); ``stats`` also names the node."""

    def restarted(self) -> bool:
        """Whether Ray restarted this actor after its process died (False outside Ray)."""
        return actor_restarted()

    def stats(self) -> dict[str, float | int | str | None]:
        out = super().stats()
        out["node"] = _node_id()
        return out
