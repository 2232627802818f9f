"""The bad-input table of docs/reliability.md: every case of tests/test_bad_input.py run as a user runs it
(`python -m vsr_pipeline.cli ...` in a subprocess), with its exit code, its stderr error line, whether a
traceback appeared and whether anything was left under the output's name.

    PYTHONPATH=. python benchmarks/reliability_bad_input_table.py          # all cases
    PYTHONPATH=. python benchmarks/reliability_bad_input_table.py --quick  # only the cases that must fail

Writes benchmarks/results/bad_input_table.{json,md}.

The cases come from the test suite (``tests.test_bad_input``), which is not installed: run it from the
repository root with ``PYTHONPATH=.``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from tests.test_bad_input import CASES, OK
except ModuleNotFoundError as e:  # the test suite is not installed
    if e.name != "tests":
        raise
    raise SystemExit("error: no module tests: run from the repository root with PYTHONPATH=.") from None

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the cases that must fail")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bad_input_table"))
    args = ap.parse_args()
    rows = []
    for case in CASES:
        if args.quick and case.code == OK:
            continue
        with tempfile.TemporaryDirectory() as d:
            argv, out = case.make(Path(d))
            started = time.monotonic()
            run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", *argv], capture_output=True,
                                 text=True, timeout=300, cwd=ROOT)
            err = run.stderr.strip().splitlines()
            lines = [ln for ln in err if ln.startswith("vsr") and " error: " in ln]
            rows.append({
                "case": case.name, "expected": case.code, "exit": run.returncode,
                "message": lines[0] if lines else "", "error_lines": len(lines),
                "traceback": "Traceback" in run.stderr,
                "output_left": out.exists() and case.code != OK
                and case.make.__name__ not in ("existing_output", "output_is_input"),
                "seconds": round(time.monotonic() - started, 2),
            })
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["| # | input | exit | stderr (one line) |", "|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        msg = r["message"].replace("|", "\\|").replace(str(Path(tempfile.gettempdir())), "/tmp")
        md.append(f"| {i} | {r['case']} | {r['exit']} | {('`' + msg + '`') if msg else '(processed)'} |")
    Path(args.out + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    bad = [r for r in rows if r["exit"] != r["expected"] or r["traceback"] or r["output_left"]
           or (r["expected"] != OK and r["error_lines"] != 1)]
    if bad:
        print(f"{len(bad)} case(s) not as expected", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
