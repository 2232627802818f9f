"""Our EDVR against BasicSR's own ``basicsr/archs/edvr_arch.py`` with the same weights (issue 3 evidence).

    python -m pip download basicsr==1.4.2 --no-deps -d /tmp/bsr
    tar xzf /tmp/bsr/basicsr-1.4.2.tar.gz -C /tmp/bsr
    python benchmarks/models_edvr_vs_basicsr.py --basicsr-src /tmp/bsr/basicsr-1.4.2/basicsr [--quick]
                                                [--json benchmarks/results/edvr_vs_basicsr.json]

BasicSR's architecture files are loaded from its source tree without installing the package (whose import
pulls in data, losses and a CUDA-built torchvision): ``basicsr.utils`` and the registry are replaced by
trivial stand-ins and ``torchvision.ops.deform_conv2d`` by our pure-PyTorch DCNv2, so both models run the
same deformable convolution and everything else (pyramid, PCD wiring, TSA, reconstruction, upsampling,
skip) is BasicSR's code against ours. For EDVR-M, EDVR-M without TSA and EDVR-L (x4): build BasicSR's model,
give its offset/mask convolutions small random weights (BasicSR zero-initialises them), load its state dict
into ours with ``strict=True``, run the same random window through both and report the largest difference.
``--quick``: EDVR-M only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import types
from pathlib import Path

import torch

from models.ops.deform_conv import modulated_deform_conv2d
from models.registry import count_params
from models.video.edvr import EDVR

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "edvr-m": {},
    "edvr-m-no-tsa": {"with_tsa": False},
    "edvr-l": {"num_feat": 128, "num_reconstruct_block": 40},
}


def _package(name: str, path: Path | None = None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(path)] if path else []  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module


def load_basicsr_edvr(src: Path) -> type[torch.nn.Module]:
    """BasicSR's EDVR class from the source tree ``src`` (the ``basicsr`` folder), with stand-ins."""
    if "torchvision" in sys.modules or "basicsr" in sys.modules:
        raise SystemExit("run this as a script: torchvision/basicsr must not be imported already")

    def deform_conv2d(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None = None, stride: tuple[int, int] = (1, 1),
                      padding: tuple[int, int] = (0, 0), dilation: tuple[int, int] = (1, 1),
                      mask: torch.Tensor | None = None) -> torch.Tensor:
        return modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation,
                                       backend="pure")

    tv = _package("torchvision")
    tv.__version__ = "0.15.0"  # type: ignore[attr-defined]
    tv.ops = _package("torchvision.ops")  # type: ignore[attr-defined]
    tv.ops.deform_conv2d = deform_conv2d  # type: ignore[attr-defined]
    _package("basicsr")
    _package("basicsr.archs", src / "archs")
    _package("basicsr.ops", src / "ops")
    utils = _package("basicsr.utils")
    utils.get_root_logger = lambda *a, **k: logging.getLogger("basicsr")  # type: ignore[attr-defined]

    class Registry:
        def register(self, obj: object = None) -> object:
            return obj if isinstance(obj, type) else (lambda cls: cls)

    registry = types.ModuleType("basicsr.utils.registry")
    registry.ARCH_REGISTRY = Registry()  # type: ignore[attr-defined]
    sys.modules["basicsr.utils.registry"] = registry
    return importlib.import_module("basicsr.archs.edvr_arch").EDVR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basicsr-src", type=Path, required=True, help="the basicsr folder of its sources")
    parser.add_argument("--quick", action="store_true", help="EDVR-M only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "edvr_vs_basicsr.json")
    args = parser.parse_args()
    if not (args.basicsr_src / "archs" / "edvr_arch.py").is_file():
        raise SystemExit(f"{args.basicsr_src}/archs/edvr_arch.py not found: pass the sources' basicsr folder")
    torch.set_num_threads(args.threads)
    theirs_cls = load_basicsr_edvr(args.basicsr_src)

    rows = []
    for name, cfg in CONFIGS.items():
        if args.quick and name != "edvr-m":
            continue
        torch.manual_seed(0)
        theirs = theirs_cls(**cfg).eval()
        with torch.no_grad():
            for key, p in theirs.named_parameters():
                if "conv_offset" in key:
                    p.normal_(0, 0.02)
        ours = EDVR(4, **cfg).eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.rand(2, 5, 3, 32, 40)
        with torch.no_grad():
            a, b = theirs(x), ours(x)
        rows.append({"config": name, "params_basicsr": count_params(theirs),
                     "params_ours": count_params(ours),
                     "max_abs_diff": (a - b).abs().max().item(), "max_abs_output": a.abs().max().item()})
        print(json.dumps(rows[-1]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"basicsr_src": str(args.basicsr_src), "input": [2, 5, 3, 32, 40],
                                     "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
