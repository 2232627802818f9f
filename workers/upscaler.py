"""Upscaler actor: the inference engine (``vsr_pipeline.engine.Engine``) held in a Ray actor.

The actor keeps the model loaded between chunks; everything it computes is ``Engine``'s, which tests and the
live-stream executor call without Ray. This shell adds which Ray node it runs on to ``stats``, whether Ray
restarted it (a restarted actor has used up part of its restart budget), and ``swap``: a warm actor takes a
job of another model (or weights, precision, ...) by loading it in its own process, without a new one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vsr_pipeline.cluster import actor_restarted
from vsr_pipeline.engine import Engine
from vsr_pipeline.tiling import free_cached

#: ``(token, Engine arguments)``: the model a pool's chunks are for (``UpscalerPool.engine``)
EngineChoice = tuple[str, dict[str, Any]]


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # pragma: no cover - an old Ray without the runtime context
        return None


class Upscaler(Engine):
    """``Engine`` in a Ray actor (``ray.remote(Upscaler)``); ``stats`` also names the node. ``token`` names
    the model it holds (``swap``)."""

    def __init__(self, *args: Any, token: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.token = token

    def swap(self, token: str, args: dict[str, Any]) -> bool:
        """Hold the engine ``args`` make (``Engine``'s arguments), named ``token``; built afresh unless this
        actor holds ``token`` already. Every chunk carries its pool's ``(token, args)``: an actor that Ray
        restarts after a crash is rebuilt with its first constructor's arguments, which may be another
        job's, and then loads the job's model again before its first chunk."""
        if token != self.token:
            old = self.device
            del self.model, self.compiled, self.forward  # the old model's memory goes first
            free_cached(old)
            torch.set_num_threads(self._default_threads)  # what the new engine takes as ``threads=0``
            Engine.__init__(self, **args)
            self.token = token
        return True

    def process(self, window: slice, keep: slice, *batches: np.ndarray, base: dict[str, Any] | None = None,
                engine: EngineChoice | None = None) -> np.ndarray:
        if engine is not None:
            self.swap(*engine)
        return super().process(window, keep, *batches, base=base)

    def process_group(self, items: list[tuple[slice, slice, int]], *batches: np.ndarray,
                      base: dict[str, Any] | None = None,
                      engine: EngineChoice | None = None) -> list[np.ndarray]:
        if engine is not None:
            self.swap(*engine)
        return super().process_group(items, *batches, base=base)

    def process_windows(self, windows: np.ndarray, base: dict[str, Any] | None = None,
                        engine: EngineChoice | None = None) -> np.ndarray:
        if engine is not None:
            self.swap(*engine)
        return super().process_windows(windows, base=base)

    def memory(self) -> int:
        """Bytes of live tensors on this actor's GPU (``torch.cuda.memory_allocated``); on the CPU, of the
        model's parameters and buffers."""
        if self.device.type == "cuda":
            return int(torch.cuda.memory_allocated(self.device))
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def restarted(self) -> bool:
        """Whether Ray restarted this actor after its process died (False outside Ray)."""
        return actor_restarted()

    def stats(self) -> dict[str, float | int | str | None]:
        out = super().stats()
        out["node"] = _node_id()
        return out
