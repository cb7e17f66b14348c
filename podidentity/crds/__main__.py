"""``python -m podidentity.crds [--check] [--dir DIR]``: regenerate or check the CRD files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from podidentity.crds._generate import check, write

_PACKAGE_DIR = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CRDs, or with ``--check`` print a diff and return 1 when they are stale."""
    parser = argparse.ArgumentParser(
        prog="python -m podidentity.crds", description="Generate the CRDs from the models."
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 with a diff if stale"
    )
    parser.add_argument("--dir", type=Path, default=_PACKAGE_DIR, help="directory of the CRD files")
    args = parser.parse_args(argv)
    if args.check:
        diff = check(args.dir)
        if diff:
            sys.stdout.write(diff)
            sys.stdout.write("\nCRDs are stale: run `python -m podidentity.crds`.\n")
            return 1
        return 0
    for path in write(args.dir):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
