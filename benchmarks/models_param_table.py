"""Parameter counts of every registered model against the figures its paper reports.

    python benchmarks/models_param_table.py            # all registered models, Markdown table on stdout
    python benchmarks/models_param_table.py --quick    # the classic single-image models only
    python benchmarks/models_param_table.py --doc docs/model_sizes.md \
        --json benchmarks/results/param_table.json

For each model: the paper's figure and the configuration it was given for (the early single-image papers
work on the Y channel: 1 channel in, 1 out), our count at that configuration (all parameters, and the
convolution weights alone, which is how those papers count), and our count for RGB at x4 (or the model's
largest scale below 4 where x4 is not defined). Models that cannot be built yet (module missing or broken)
are listed with the error, not skipped silently. Builds only, no forward pass: a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.registry import build_model, count_params, list_specs

ROOT = Path(__file__).resolve().parents[1]

Y = {"num_in_ch": 1, "num_out_ch": 1}
#: the classic single-image models, in the order they were published (listed first)
CLASSIC = ("srcnn", "fsrcnn", "espcn", "vdsr", "drcn", "red", "drrn", "lapsrn")


@dataclass(frozen=True)
class Paper:
    figure: int  # parameters the paper (or the comparison tables citing it) reports
    label: str  # how it is written there
    config: str  # the configuration the figure is for
    scale: int
    overrides: dict  # build_model overrides giving that configuration


#: published figures (docs/REFERENCES and the papers); only models listed here get a paper column
PAPERS: dict[str, Paper] = {
    "srcnn": Paper(57_184, "57,184", "9-5-5, Y, x3", 3, Y),
    "fsrcnn": Paper(12_464, "12,464", "FSRCNN(56,12,4), Y, x3", 3, Y),
    "espcn": Paper(25_000, "~25K", "Y, x4", 4, Y),
    "vdsr": Paper(665_000, "665K", "20 layers, 64 filters, Y", 4, Y),
    "drcn": Paper(1_770_000, "1.77M", "D=16, 256 filters, Y", 4, Y),
    "red": Paper(4_100_000, "~4.1M", "RED30, 128 feature maps, Y", 4, Y),
    "drrn": Paper(297_000, "297K", "B1U25, 128 filters, Y", 4, Y),
    "lapsrn": Paper(812_000, "812K", "depth 10, Y, x4", 4, Y),
    "srresnet": Paper(1_500_000, "1.5M", "RGB, x4", 4, {}),
    "edsr": Paper(43_000_000, "43M", "RGB, x4", 4, {}),
    "edsr-baseline": Paper(1_500_000, "1.5M", "RGB, x4", 4, {}),
    "mdsr": Paper(8_000_000, "8.0M", "RGB, x2/x3/x4 in one model", 4, {}),
    "rdn": Paper(22_000_000, "22M", "RGB, x4", 4, {}),
    "rrdbnet": Paper(16_700_000, "16.7M", "RGB, x4", 4, {}),
    "edvr-l": Paper(20_600_000, "20.6M", "RGB, x4", 4, {}),
    "basicvsr": Paper(6_300_000, "6.3M", "RGB, x4", 4, {}),
}


def rgb_scale(scales: tuple[int, ...]) -> int:
    """x4 where the model defines it, else its largest scale below 4, else its smallest."""
    if 4 in scales:
        return 4
    below = [s for s in scales if s < 4]
    return max(below) if below else min(scales)


def conv_weights(model: nn.Module) -> int:
    """Weights of convolutions and deconvolutions only (no biases, activations, norms or other parameters)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d))


def one_row(name: str, scales: tuple[int, ...]) -> dict:
    row: dict = {"model": name}
    try:
        scale = rgb_scale(scales)
        row["rgb_scale"] = scale
        row["rgb_params"] = count_params(build_model(name, scale))
        paper = PAPERS.get(name)
        if paper is not None:
            model = build_model(name, paper.scale, **paper.overrides)
            row.update(paper=paper.figure, paper_label=paper.label, config=paper.config,
                       params_at_config=count_params(model), weights_at_config=conv_weights(model))
            row["rel_diff"] = (row["params_at_config"] - paper.figure) / paper.figure
    except Exception as exc:  # a model another helper has not finished: report, do not stop the table
        text = str(exc).splitlines()[0] if str(exc) else ""
        row["error"] = f"{type(exc).__name__}: {text[:100]}"
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | paper params | paper config | ours at that config (conv weights only) | vs paper "
             "| ours, RGB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {PAPERS[r['model']].label if r['model'] in PAPERS else '-'} "
                         f"| | not buildable: {r['error']} | | |")
            continue
        rgb = f"{r['rgb_params']:,} (x{r['rgb_scale']})"
        if "paper" in r:
            lines.append(f"| {r['model']} | {r['paper_label']} | {r['config']} | {r['params_at_config']:,} "
                         f"({r['weights_at_config']:,}) | {100 * r['rel_diff']:+.1f}% | {rgb} |")
        else:
            lines.append(f"| {r['model']} | - | | | | {rgb} |")
    return "\n".join(lines)


DOC_HEAD = """# Model sizes against the papers

Generated by `python benchmarks/models_param_table.py --doc docs/model_sizes.md` (builds every registered
model, no forward pass). "Ours at that config" builds the model as the paper describes it: the early
single-image papers (SRCNN to LapSRN) work on the luminance channel only, so that column uses
`num_in_ch=num_out_ch=1`;
the figure in brackets counts convolution/deconvolution weights only, which is how those papers count
(SRCNN's 57,184 and FSRCNN's 12,464 are exactly their weight counts; FSRCNN's 173 biases and 172 PReLU
slopes add 2.8%). "Ours, RGB" is the model the pipeline runs (3 channels in and out) at x4, or at the
largest scale below 4 where the model has no x4. `tests/test_models_sisr_classic.py` checks the classic
models' counts against figures derived by hand from the layer layouts.

"""

DOC_NOTES = """

Notes on the paper figures:
- ESPCN "~25K" is the comparison tables' rounding; the Y model has 22,729 parameters at x3 and 24,752 at x4.
- RED30's "~4.1M" (as comparison tables quote it) matches 30 layers of 128 3x3 feature maps (4,131,072
  weights); 64 maps would give 1.03M. The width was not checked against the RED paper's own text here.
- LapSRN's 812K is the 4x model of the authors' code (depth 10, 3x3 feature deconvolution, 4x4 bilinear
  image deconvolution).
- RGB models: SRResNet 1.5M, EDSR 43M, RDN 22M, EDVR-L 20.6M, BasicVSR 6.3M as in the project's shared
  REFERENCES.md; EDSR-baseline 1.5M and MDSR 8.0M from the EDSR paper's Table 1; RRDBNet 16.7M from ESRGAN.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the classic single-image models only")
    parser.add_argument("--models", nargs="*", help="only these registered models")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "param_table.json")
    parser.add_argument("--doc", type=Path, help="also write the Markdown document here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs = list_specs()
    if args.quick:
        specs = [s for s in specs if s.name in CLASSIC]
    if args.models:
        specs = [s for s in specs if s.name in args.models]
    order = {name: i for i, name in enumerate(CLASSIC)}
    specs.sort(key=lambda s: (order.get(s.name, len(order)), s.name))
    rows = [one_row(s.name, s.scales) for s in specs if s.parametric]
    table = markdown(rows)
    print(table)
    failed = [r["model"] for r in rows if "error" in r]
    if failed:
        print(f"\nnot buildable now: {', '.join(failed)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    if args.doc is not None:
        skipped = f"\n\nNot buildable when generated: {', '.join(failed)}." if failed else ""
        args.doc.write_text(DOC_HEAD + table + skipped + DOC_NOTES)


if __name__ == "__main__":
    main()
