"""Upscaler actor: the inference engine (``vsr_pipeline.engine.Engine``) held in a Ray actor.

The actor keeps the model loaded between chunks; everything it computes is ``Engine``'s, which tests and the
live-stream executor call without Ray. This shell only adds which Ray node it runs on to ``stats``, and
whether Ray restarted it (a restarted actor has used up part of its restart budget).
"""

from __future__ import annotations

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
        import warnings

        try:
            import ray

            with warnings.catch_warnings():  # Ray 2.x warns inside its own property (its use of actor_id)
                warnings.simplefilter("ignore", DeprecationWarning)
                context = ray.get_runtime_context() if ray.is_initialized() else None
                return bool(context is not None and context.was_current_actor_reconstructed)
        except Exception:  # pragma: no cover - not in an actor
            return False

    def stats(self) -> dict[str, float | int | str | None]:
        out = super().stats()
        out["node"] = _node_id()
        return out
