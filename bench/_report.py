"""The benches' command line and results folder; the report itself is `surco.report.Report`
(the format of the project's BENCH.md), shared with `surco.Comparison.write_json`."""
from __future__ import annotations

import argparse
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
    """Common command line: ``--quick`` plus whatever ``extra(parser)`` adds."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="faithful small version")
    if extra is not None:
        extra(p)
    return p.parse_args(argv)
