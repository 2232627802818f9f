"""``UpscalerPool``: Upscaler actors shared by every chunk of every video of a job (``vsr upscale`` holds one,
``vsr batch`` several). Each chunk goes to the actor with the fewest chunks outstanding.

Any actor can take any chunk: a chunk carries its own temporal context (``vsr_pipeline.plan``) and every
forward pass has a fixed shape (``vsr_pipeline.engine.forward_full``), so the output does not depend on which
actor computed it (given the same torch thread count: the summation order of a convolution, so the last bit
of a float, follows it; a pool of CPU actors with fewer threads each than ``vsr upscale``'s one can differ
from it by a rounding step in a few pixels). Placement follows Ray resources: on GPUs one actor per GPU
(``num_gpus=1``), on the CPU an actor takes a CPU slot and runs the threads it is given.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from models.registry import ModelSpec
from vsr_pipeline import warm_actors

if TYPE_CHECKING:
    from vsr_pipeline.options import ModelSettings
    from workers.upscaler import EngineChoice

#: seconds warm actors have to load a job's model (``Upscaler.swap``) and reset before new ones are started
SWAP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Placement:
    """Ray resources of each upscaler actor and the torch threads it runs (0: torch's default)."""

    actors: int
    num_cpus: float
    num_gpus: float
    threads: int


def cpu_placement(actors: int, cluster_cpus: int, threads: int = 0) -> Placement:
    """``actors`` upscalers on CPU slots: one slot each (the decoders and encoders take none, their work is
    small beside the model's), each running ``threads`` torch threads (default: the cluster's cores shared
    out, at least one)."""
    actors = max(1, actors)
    return Placement(actors, 1, 0, threads or max(1, cluster_cpus // actors))


def gpu_placement(gpus: int, share: float = 1.0) -> Placement:
    """One upscaler per GPU (``share`` of it: with ``--align`` the flow and warp stages take the rest)."""
    return Placement(max(1, gpus), 0, share, 0)


class UpscalerPool:
    """Handles of Upscaler actors and the chunks outstanding on each (thread-safe: ``vsr batch`` submits
    from one thread per video)."""

    def __init__(self, actors: list[Any], depth: int = 2, warm_key: tuple[Any, ...] | None = None,
                 base: dict[str, Any] | None = None, engine: EngineChoice | None = None):
        if not actors:
            raise ValueError("an upscaler pool needs at least one actor")
        self.actors = actors
        self.depth = max(1, depth)
        #: what a later job must ask for to take these actors warm (None: they are never kept): ``(slots,
        #: model)``, the actors' Ray options and session, then what their engine is built from
        self.warm_key = warm_key
        #: the job's ``Engine.ADJUSTABLE`` settings, sent with every chunk (None: the actors' own)
        self.base = base
        #: the model the chunks are for, sent with every chunk (``Upscaler.swap``; None: the actors' own)
        self.engine = engine
        self._outstanding: list[list[Any]] = [[] for _ in actors]
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls,
        spec: ModelSpec,
        placement: Placement,
        settings: ModelSettings,
        device: str,
        restarts: dict[str, int],
    ) -> UpscalerPool:
        """``placement.actors`` Upscaler actors for ``settings`` on ``device`` (``auto`` resolves on each
        actor's node): the ones a finished job left warm (``finish``) where their Ray options and session
        are this job's, loading this job's model in their own processes where it is another
        (``Upscaler.swap``), else new ones. They keep freed buffers in their own process's heap
        (``vsr_pipeline.heap``)."""
        import ray

        from vsr_pipeline.cluster import reporting_errors
        from vsr_pipeline.engine import ADJUSTABLE, engine_arguments
        from vsr_pipeline.ledger import input_fingerprint
        from workers.upscaler import Upscaler

        args = engine_arguments(settings, spec, device, placement.threads, reuse_memory=True)
        base = {k: args.pop(k) for k in ADJUSTABLE}  # a warm actor takes these from the job
        ctx = ray.get_runtime_context()
        # the actors' class (a test may replace it), the Ray session, and the weights file as it is now
        weights = args["weights"]
        stamp = input_fingerprint(weights) if weights and os.path.exists(weights) else None
        key = ((replace(placement, threads=0), sorted(restarts.items()), Upscaler, ctx.get_node_id(),
                ctx.get_job_id()), (stamp, args))
        engine = (uuid.uuid4().hex, {**args, **base})
        warm = warm_actors.take(key, lambda parked: parked[0] == key[0])
        if warm is not None:
            if warm.key == key:
                engine = warm.payload or engine  # None: parked by a pool made without one (a reload)
            try:  # still alive, holding this job's model, and back to a new engine's state with its settings
                ray.get([r for a in warm.actors for r in (a.swap.remote(*engine), a.reset.remote(base))],
                        timeout=SWAP_TIMEOUT_S)
                return cls(warm.actors, warm_key=key, base=base, engine=engine)
            except Exception as exc:  # one died while parked, or the model failed to load: new actors say why
                warm_actors.kill(warm.actors, f"warm upscalers unusable ({exc}): starting new ones")
        cls_remote = ray.remote(num_cpus=placement.num_cpus, num_gpus=placement.num_gpus, **restarts)(
            reporting_errors(Upscaler)
        )
        return cls([cls_remote.remote(**args, **base, token=engine[0]) for _ in range(placement.actors)],
                   warm_key=key, base=base, engine=engine)

    def finish(self, keep: bool) -> None:
        """The job is over: park the actors warm for the next job (``keep``: it ended well and Ray outlives
        it), or kill them."""
        if keep and self.warm_key is not None and warm_actors.WARM_SECONDS > 0 and not self._restarted():
            warm_actors.park(self.warm_key, self.actors, self.engine)
        else:
            self.kill()

    def _restarted(self) -> bool:
        """Whether Ray restarted any actor (its restart budget is no longer a new actor's) or one is gone."""
        import ray

        try:
            return any(ray.get([a.restarted.remote() for a in self.actors], timeout=30))
        except Exception:
            return True

    def ready(self) -> list[Any]:
        """References that resolve when every actor has loaded its model (raise its constructor's error)."""
        return [a.ready.remote() for a in self.actors]

    @staticmethod
    def _wait_inputs(refs: list[Any]) -> None:
        """Block (the calling job's thread) until ``refs`` are computed.

        An actor runs one caller's calls in submission order, and every job submits from the driver: a
        chunk whose frames are still being decoded (its video just starting) would hold up, at the head of
        the actor's queue, the chunks of other videos that are ready. So a chunk is handed to an upscaler
        only once its inputs exist."""
        import ray

        pending = list(dict.fromkeys(r for r in refs if isinstance(r, ray.ObjectRef)))  # chunks share batches
        if pending:
            ray.wait(pending, num_returns=len(pending), fetch_local=False)

    def _submit(self, call: Any) -> Any:
        """``call(actor)`` on the actor with the fewest chunks outstanding, once one has fewer than
        ``depth``; returns its reference.

        Chunks are not queued deeper than ``depth`` (one running, one waiting) on any actor: a chunk
        committed to a busy actor's queue could not move to another actor that falls idle sooner (measured
        with EDVR-S on two nodes: one upscaler busy 99% of the time, the other 73%)."""
        import ray

        while True:
            with self._lock:
                for refs in self._outstanding:
                    if refs:
                        _, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
                        refs[:] = pending
                i = min(range(len(self.actors)), key=lambda k: len(self._outstanding[k]))
                if len(self._outstanding[i]) < self.depth:
                    ref = call(self.actors[i])
                    # a grouped call's references all resolve when its one forward pass ends
                    self._outstanding[i].append(ref[0] if isinstance(ref, list) else ref)
                    return ref
                busy = [r for refs in self._outstanding for r in refs]
            ray.wait(busy, num_returns=1, timeout=1.0)

    def _base(self, bit_depth: int | None) -> dict[str, Any] | None:
        """The settings sent with a chunk: the pool's, with the chunk's job's output ``bit_depth`` (the jobs
        sharing a pool (``vsr batch``) each have their input's)."""
        return self.base if bit_depth is None or self.base is None else {**self.base, "bit_depth": bit_depth}

    def process(self, window: slice, keep: slice, batches: list[Any], bit_depth: int | None = None) -> Any:
        """Reference to the HR core frames of one chunk (``Upscaler.process``), given to the least-loaded
        actor once its decoded ``batches`` exist; HR frames of ``bit_depth`` (None: the pool's)."""
        self._wait_inputs(batches)
        base = self._base(bit_depth)
        return self._submit(lambda actor: actor.process.remote(window, keep, *batches, base=base,
                                                                   engine=self.engine))

    def process_group(self, items: list[tuple[slice, slice, int]], batches: list[Any],
                      bit_depth: int | None = None) -> list[Any]:
        """References to the HR core frames of several chunks of a recurrent model, computed by one actor in
        one forward pass (``Upscaler.process_group``; items as there)."""
        self._wait_inputs(batches)
        base = self._base(bit_depth)
        return self._submit(  # type: ignore[no-any-return]
            lambda actor: actor.process_group.options(num_returns=len(items)).remote(
                items, *batches, base=base, engine=self.engine)
        )

    def process_windows(self, aligned: Any, bit_depth: int | None = None) -> Any:
        """Reference to the HR frames of one chunk of pre-aligned windows (``Upscaler.process_windows``)."""
        self._wait_inputs([aligned])
        base = self._base(bit_depth)
        return self._submit(lambda actor: actor.process_windows.remote(aligned, base=base,
                                                                           engine=self.engine))

    def _ask(self, method: str) -> list[Any]:
        """Each actor's answer to ``method()``, once it is back where Ray is restarting it (a worker killed
        after the job's last chunk), or None where it is gone for good (its chunks were all done)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        from vsr_pipeline.scheduler import RESTART_POLL_S, RESTART_WAIT_S

        out: list[Any] = []
        for actor in self.actors:
            deadline = time.monotonic() + RESTART_WAIT_S
            while True:
                try:
                    out.append(ray.get(getattr(actor, method).remote(), timeout=RESTART_WAIT_S))
                    break
                except ActorUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(RESTART_POLL_S)
                except RayActorError:
                    out.append(None)
                    break
        return out

    def device_name(self) -> str:
        names = sorted({n for n in self._ask("device_name") if n is not None}) or ["unknown"]
        prefix = f"{len(self.actors)} x " if len(self.actors) > 1 else ""
        return prefix + ", ".join(names)

    def device_type(self) -> str:
        """``cuda`` or ``cpu``: where the first actor runs (``auto`` resolves on the actor's own node)."""
        import ray

        return str(ray.get(self.actors[0].device_type.remote()))

    def stats(self) -> list[dict[str, Any]]:
        """Each actor's busy seconds, calls and frames (``Upscaler.stats``; an actor Ray restarted counts
        from its restart, one gone for good is left out)."""
        return [s for s in self._ask("stats") if s is not None]

    def kill(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)


def release_warm_upscalers() -> None:
    """Kill the upscaler actors a finished job left warm in this process, freeing their CPU or GPU slots, and
    the idle decoders and encoders (``vsr_pipeline.warm_actors``)."""
    warm_actors.release()

