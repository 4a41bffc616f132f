"""`--resume` continues the store the bench's report names: bench/results/NAME.runs.jsonl,
where NAME is the bench's `Report` name (families_evals.py reports as "families-evals"; a
default store named after the file would start a second, empty store beside the
committed one and recompute every run)."""
import re
from pathlib import Path

from bench._report import RESULTS, parse_args

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_resume_default_store_follows_the_name():
    a = parse_args("probe", ["--resume"], name="families-evals")
    assert a.store == str(RESULTS / "families-evals.runs.jsonl")
    a = parse_args("probe", ["--resume", "--quick"], name="scale-room")
    assert a.store == str(RESULTS / "scale-room-quick.runs.jsonl")
    assert parse_args("probe", []).store is None
    assert parse_args("probe", ["--store", "x.jsonl"]).store == "x.jsonl"


def test_every_bench_resumes_the_store_of_its_report():
    checked = 0
    for path in sorted(BENCH.glob("*.py")):
        src = path.read_text()
        calls = re.findall(r"(?<![.\w])parse_args\((.*?)\)\n", src, re.S)
        reports = set(re.findall(r'\bReport\("([^"]+)"', src))
        if not calls or not reports or path.name == "_report.py":
            continue
        named = re.findall(r'name="([^"]+)"', " ".join(calls))
        want = named[0] if named else path.stem
        assert want in reports, (f"{path.name}: --resume's default store would be "
                                 f"{want}.runs.jsonl, but the report is {sorted(reports)}: "
                                 f"pass name=... to parse_args")
        checked += 1
    assert checked >= 15


def test_a_partial_photonics_run_names_its_own_report():
    """bench.photonics: only the run its mode defines writes photonics[-quick].json; a run of
    some devices, instances or simulations says what differs, and never replaces it."""
    from bench.photonics import report_name
    from surco.problems import photonics as ph
    full = {d: ph.N_PER_SPLIT for d in ph.DEVICES}
    assert report_name(False, list(ph.DEVICES), full, ph.STEPS) == "photonics"
    assert report_name(True, ["waveguide_bend"], {"waveguide_bend": 2}, 30) == "photonics"
    two = ["waveguide_bend", "mode_converter"]
    assert report_name(False, two, {d: ph.N_PER_SPLIT for d in two}, ph.STEPS) == \
        "photonics-waveguide_bend-mode_converter"
    heavy = {**full, "wdm": 5, "beam_splitter": 5}
    assert report_name(False, list(ph.DEVICES), heavy, ph.STEPS) == \
        "photonics-beam_splitter-n5-wdm-n5"
    assert report_name(True, ["waveguide_bend"], {"waveguide_bend": 2}, 10) == "photonics-e10"
