"""Run the ``vsr`` CLI with a fault injected in-process (``tests.faults``), for tests that need a real CLI
process (signals, exit codes). Run from the repository root:

    python -m tests.fault_cli delay:2 -- upscale in.mp4 -o out.mp4 --model bicubic ...

exits with the CLI's exit code.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m tests.fault_cli SPEC -- VSR-ARGS...", file=sys.stderr)
        return 2
    import pytest

    from tests.faults import install
    from vsr_pipeline.cli import main as vsr_main

    with pytest.MonkeyPatch.context() as mp:
        install(mp, argv[0])
        return vsr_main(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
