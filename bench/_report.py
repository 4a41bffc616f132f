"""The benches' command line and results folder; the report itself is `surco.report.Report`
(the format of docs/bench-format.md), shared with `surco.Comparison.write_json`."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from surco.report import Report as _Report
from surco.report import machine  # noqa: F401  (re-exported for the benches)

RESULTS = Path(__file__).resolve().parent / "results"


class Report(_Report):
    """`surco.report.Report` writing to ``bench/results/NAME[-quick].json`` (or ``path``).

    A bench that compares methods calls `add_map` with each `surco.Comparison` it reports:
    the JSON then holds, under "maps", the which-method map of each (label -> map).
    """

    def __init__(self, bench: str, quick: bool, path: str | Path | None = None):
        super().__init__(bench, quick, path=path, results_dir=RESULTS)

    def add_map(self, cmp: Any, label: str | None = None, **grid: Any) -> dict[str, Any]:
        """Store the which-method map of ``cmp`` (a `surco.Comparison`) in the JSON, under
        ``"maps"[label]`` (default label: the comparison's family): `surco.Comparison.map`
        from the runs' anytime traces (winner per cost of one evaluation and time budget,
        the default grid unless ``grid`` gives ``costs`` / ``budgets``), as
        `surco.whichmethod.MethodMap.to_json`. Returns that JSON object.

        Raises:
          TypeError: ``cmp`` has no ``map`` (not a comparison).
          ValueError: ``label`` already holds a map in this report.
        """
        if not callable(getattr(cmp, "map", None)):
            raise TypeError(f"Report.add_map: expected a surco.Comparison, got "
                            f"{type(cmp).__name__}")
        label = str(cmp.family if label is None else label)
        maps = self.extra.setdefault("maps", {})
        if label in maps:
            raise ValueError(f"Report.add_map: {self.bench}: a map labelled {label!r} is "
                             f"already stored; give each comparison its own label")
        maps[label] = cmp.map(**grid).to_json()
        return maps[label]


def compare(*args: Any, **kwargs: Any) -> Any:
    """`surco.compare` for a bench script: Ctrl-C (SIGINT) stops the bench, not only the
    comparison in progress. `surco.compare` returns the runs finished so far with
    ``interrupted=True`` (the notebook behaviour), and a script that goes on to its next
    comparison would not stop; here a `KeyboardInterrupt` is raised again instead. The
    finished runs are in the store (``--store``), and ``--resume`` continues from them.

    Raises:
      KeyboardInterrupt: the comparison was interrupted.
    """
    import surco
    cmp = surco.compare(*args, **kwargs)
    if cmp.interrupted:
        raise KeyboardInterrupt(
            f"{cmp.family}: interrupted after {len(cmp.runs)} runs; the finished runs are "
            f"in the store when one was given (--store), and --resume continues from them")
    return cmp


def interruptible() -> bool:
    """Make SIGINT stop this bench as Ctrl-C does, also when it was started in the
    background (``nohup``, ``cmd &`` in a shell without job control), where the process
    inherits SIGINT *ignored* and Python installs no `KeyboardInterrupt` handler: then
    SIGINT would do nothing, and ``kill -TERM`` loses the run in progress (every finished
    run is kept by the store either way). Send it to the bench's process group, as Ctrl-C
    does (``kill -INT -- -PGID``), so that worker processes (bench.scale runs each setting
    in one) stop too. Main thread only; returns whether the handler was installed."""
    if (signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            and threading.current_thread() is threading.main_thread()):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return True
    return False


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: callable = None, name: str | None = None) -> argparse.Namespace:
    """Common command line: ``--quick``, ``--store PATH`` / ``--resume`` (every finished run
    appended to a `surco.store.RunStore` as it completes; with ``--resume`` the runs already
    there are reused, so a stopped bench continues where it was), plus whatever
    ``extra(parser)`` adds. ``args.store`` is the store's path or None: pass it to
    `surco.compare` (``store=args.store``). ``name`` is the bench's report name
    (`Report`), which names ``--resume``'s default store (default: the script's file name,
    for a bench whose report has the same name). A bench started in the background stops
    on SIGINT as on Ctrl-C (`interruptible`)."""
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
    interruptible()
    if args.store is not None and not args.resume and Path(args.store).exists():
        p.error(f"--store {args.store} exists: add --resume to continue it, or remove it")
    if args.resume and args.store is None:
        name = name or (Path(sys.argv[0]).stem if argv is None else "bench")
        args.store = str(RESULTS / f"{name}{'-quick' if args.quick else ''}.runs.jsonl")
    return args
