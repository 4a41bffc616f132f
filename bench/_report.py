"""The benches' command line and results folder; the report itself is `surco.report.Report`
(the format of docs/bench-format.md), shared with `surco.Comparison.write_json`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from surco.report import Report as _Report
from surco.report import machine  # noqa: F401  (re-exported for the benches)

RESULTS = Path(__file__).resolve().parent / "results"


class Report(_Report):
    """`surco.report.Report` writing to ``bench/results/NAME[-quick].json``."""

    def __init__(self, bench: str, quick: bool):
        super().__init__(bench, quick, results_dir=RESULTS)


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: callable = None) -> argparse.Namespace:
    """Common command line: ``--quick``, ``--store PATH`` / ``--resume`` (every finished run
    appended to a `surco.store.RunStore` as it completes; with ``--resume`` the runs already
    there are reused, so a stopped bench continues where it was), plus whatever
    ``extra(parser)`` adds. ``args.store`` is the store's path or None: pass it to
    `surco.compare` (``store=args.store``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="faithful small version")
    p.add_argument("--store", default=None, metavar="PATH",
                   help="append every finished run to this JSON Lines store")
    p.add_argument("--resume", action="store_true",
                   help="reuse the runs already in the store (default path: "
                        "bench/results/NAME[-quick].runs.jsonl)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.store is not None and not args.resume and Path(args.store).exists():
        p.error(f"--store {args.store} exists: add --resume to continue it, or remove it")
    if args.resume and args.store is None:
        name = Path(sys.argv[0]).stem if argv is None else "bench"
        args.store = str(RESULTS / f"{name}{'-quick' if args.quick else ''}.runs.jsonl")
    return args
