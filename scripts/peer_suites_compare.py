#!/usr/bin/env python3
"""Compare a peer project's pytest results, bare vs under ``telemetryflow-run``.

Reads pytest JUnit XML files (``pytest --junitxml=...``; ``-o junit_family=xunit1`` adds the
file path, which makes the printed node ids exact) and prints, per run, how many tests
passed / failed / were skipped / errored, and every test that passed bare but failed (or
errored, or vanished) in a launched run: those are the launcher's regressions.

    peer_suites_compare.py [--project NAME] [--runs RUNS.tsv] [--rerun LABEL=XML ...]
                           [--attribute LABEL=XML ...] [--allow-propagation]
                           [--ids-out FILE] [--markdown] BARE.xml LABEL=LAUNCHED.xml ...

* The first file is the baseline (bare run); each following ``LABEL=PATH`` is a launched
  run (the label defaults to the file's stem).
* ``--rerun LABEL=XML``: the same launched configuration re-run on the regressed tests only;
  a regression that passes there is reported as flaky and does not count for the exit code.
* ``--attribute LABEL=XML``: the regressed tests re-run with TELEMETRYFLOW_PROPAGATORS=none;
  a regression that fails on re-run but passes there is put down to the injected
  ``traceparent`` header (tests that assert the exact headers on the wire). It counts for the
  exit code unless ``--allow-propagation``.
* ``--runs``: a TSV written by peer_suites.sh (label, exit code, seconds) shown in the table.
* ``--ids-out FILE``: write the node ids of the regressed tests, one a line (for a re-run).
* ``--markdown``: also print the summary as a Markdown table.

Exit status: 0 when no test regresses, 1 when one does, 2 on a usage or input error.
Standard library only (Python 3.10+).
"""

from __future__ import annotations

import argparse
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
_OUTCOMES = (PASSED, FAILED, SKIPPED, ERROR)
_BAD = (FAILED, ERROR)
_RANK = {PASSED: 0, SKIPPED: 1, ERROR: 2, FAILED: 3}
MESSAGE_LINES = 4
MESSAGE_WIDTH = 220


@dataclass
class Case:
    nodeid: str
    outcome: str
    message: str = ""
    seconds: float = 0.0


@dataclass
class Run:
    label: str
    path: str
    cases: dict[str, Case] = field(default_factory=dict)
    problem: str = ""  # why the XML could not be used (missing, truncated, ...)

    @property
    def usable(self) -> bool:
        return not self.problem

    def counts(self) -> Counter:
        return Counter(case.outcome for case in self.cases.values())


def _nodeid(testcase: ET.Element) -> str:
    """``path::Class::name`` from a JUnit ``testcase``, as pytest prints it.

    ``classname`` is the dotted module path plus the classes; with ``file`` (xunit1) the
    module part is known exactly, otherwise the dotted name is kept as is.
    """
    classname = testcase.get("classname", "")
    name = testcase.get("name", "")
    path = testcase.get("file")
    if path and classname:
        module = os.path.splitext(path)[0].replace("\\", ".").replace("/", ".")
        if classname == module:
            return f"{path}::{name}"
        if classname.startswith(module + "."):
            classes = classname[len(module) + 1:].split(".")
            return "::".join([path, *classes, name])
    if not classname:
        return name
    return f"{classname}::{name}"


def _message(element: ET.Element) -> str:
    """The first lines worth reading: the report's message, then the ``E`` lines of the
    traceback (pytest's assertion/exception lines) when the message is short."""
    lines: list[str] = []
    message = (element.get("message") or "").strip()
    if message:
        lines.extend(message.splitlines())
    text = element.text or ""
    e_lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    for line in e_lines:
        if line and line not in lines:
            lines.append(line)
    if not lines:
        lines = [ln.strip() for ln in text.strip().splitlines()[-MESSAGE_LINES:]]
    out = [ln if len(ln) <= MESSAGE_WIDTH else ln[: MESSAGE_WIDTH - 3] + "..." for ln in lines]
    return "\n".join(out[:MESSAGE_LINES])


def parse(label: str, path: str) -> Run:
    run = Run(label, path)
    if not os.path.exists(path):
        run.problem = "no JUnit XML (the run crashed, timed out or was not run)"
        return run
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        run.problem = f"unreadable JUnit XML ({exc})"
        return run
    for testcase in root.iter("testcase"):
        outcome, message = PASSED, ""
        for child in testcase:
            kind = {"failure": FAILED, "error": ERROR, "skipped": SKIPPED}.get(child.tag)
            if kind and _RANK[kind] > _RANK[outcome]:
                outcome, message = kind, _message(child)
        case = Case(_nodeid(testcase), outcome, message, float(testcase.get("time") or 0))
        old = run.cases.get(case.nodeid)
        # Duplicated ids (a setup error and a call failure, or repeated parameter ids):
        # keep the worst outcome, as pytest's own summary would.
        if old is None or _RANK[case.outcome] > _RANK[old.outcome]:
            run.cases[case.nodeid] = case
    return run


def _spec(text: str) -> tuple[str, str]:
    if "=" in text:
        label, path = text.split("=", 1)
        return label, path
    return os.path.splitext(os.path.basename(text))[0], text


def _read_runs_tsv(path: str | None) -> dict[str, tuple[str, str]]:
    """label -> (exit code, seconds) from peer_suites.sh's bookkeeping."""
    if not path or not os.path.exists(path):
        return {}
    info: dict[str, tuple[str, str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3:
                info[parts[0]] = (parts[1], parts[2])
    return info


def _indent(text: str, prefix: str = "        ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _log_tail(xml_path: str, lines: int = 12) -> str:
    """Why a run left no XML: the ``E`` lines (else the last lines) of the pytest output
    that peer_suites.sh keeps next to it (``NAME.log`` beside ``NAME.xml``)."""
    log = os.path.splitext(xml_path)[0] + ".log"
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            text = handle.read().splitlines()
    except OSError:
        return ""
    last_e = max((i for i, ln in enumerate(text) if ln.startswith("E ")), default=None)
    end = len(text) if last_e is None else last_e + 1
    picked = text[max(0, end - lines):end]
    return "\n".join(ln[:MESSAGE_WIDTH] for ln in picked)


def _passed_in(run: Run | None, nodeid: str) -> bool:
    if run is None or not run.usable:
        return False
    case = run.cases.get(nodeid)
    return case is not None and case.outcome == PASSED


def compare(base: Run, launched: Run) -> dict[str, list[str]]:
    """Node ids by change category, launched relative to bare."""
    changes: dict[str, list[str]] = {"regressed": [], "vanished": [], "pass_to_skip": [],
                                     "fixed": [], "skip_to_pass": [], "new": []}
    for nodeid, case in base.cases.items():
        other = launched.cases.get(nodeid)
        if case.outcome == PASSED:
            if other is None:
                changes["vanished"].append(nodeid)
            elif other.outcome in _BAD:
                changes["regressed"].append(nodeid)
            elif other.outcome == SKIPPED:
                changes["pass_to_skip"].append(nodeid)
        elif case.outcome in _BAD and other is not None and other.outcome == PASSED:
            changes["fixed"].append(nodeid)
        elif case.outcome == SKIPPED and other is not None and other.outcome == PASSED:
            changes["skip_to_pass"].append(nodeid)  # an xfail that xpasses, usually
    changes["new"] = [n for n, c in launched.cases.items()
                      if n not in base.cases and c.outcome in _BAD]
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare pytest JUnit XML results: bare vs under telemetryflow-run.")
    parser.add_argument("bare", help="JUnit XML of the bare run (the baseline)")
    parser.add_argument("launched", nargs="+", metavar="LABEL=XML",
                        help="JUnit XML of a launched run, optionally labelled")
    parser.add_argument("--project", default="", help="name shown in the headings")
    parser.add_argument("--runs", help="TSV of label, exit code, seconds (from peer_suites.sh)")
    parser.add_argument("--rerun", action="append", default=[], metavar="LABEL=XML",
                        help="re-run of the regressed tests for the launched run LABEL")
    parser.add_argument("--attribute", action="append", default=[], metavar="LABEL=XML",
                        help="re-run of the regressed tests for LABEL with "
                             "TELEMETRYFLOW_PROPAGATORS=none: a test failing again on re-run "
                             "but passing here is put down to the traceparent header")
    parser.add_argument("--allow-propagation", action="store_true",
                        help="regressions put down to the traceparent header do not count "
                             "for the exit status")
    parser.add_argument("--ids-out", help="write the regressed node ids here, one a line")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)

    base = parse(*_spec(f"bare={args.bare}" if "=" not in args.bare else args.bare))
    runs = [parse(*_spec(spec)) for spec in args.launched]
    reruns = {label: parse(f"{label} (re-run)", path)
              for label, path in (_spec(spec) for spec in args.rerun)}
    attributions = {label: parse(f"{label} (no propagation)", path)
                    for label, path in (_spec(spec) for spec in args.attribute)}
    timing = _read_runs_tsv(args.runs)
    title = f" {args.project}" if args.project else ""

    print(f"== peer suite{title}: bare vs telemetryflow-run")
    header = f"{'run':<16}{'passed':>8}{'failed':>8}{'skipped':>9}{'errors':>8}{'total':>8}" \
             f"{'exit':>6}{'seconds':>9}"
    print(header)
    table: list[tuple[str, Counter, int, str, str]] = []
    for run in [base, *runs]:
        counts = run.counts()
        code, seconds = timing.get(run.label, ("", ""))
        table.append((run.label, counts, len(run.cases), code, seconds))
        if run.usable:
            print(f"{run.label:<16}" + "".join(f"{counts[o]:>{w}}" for o, w in
                                               zip(_OUTCOMES, (8, 8, 9, 8), strict=True))
                  + f"{len(run.cases):>8}{code:>6}{seconds:>9}")
        else:
            print(f"{run.label:<16}  {run.problem}  (exit {code or '?'}, {seconds or '?'} s)")

    if not base.usable:
        print(f"\nbaseline unusable: {base.problem}; nothing to compare", file=sys.stderr)
        return 2

    confirmed_total = propagation_total = 0
    regressed_ids: list[str] = []
    for run in runs:
        print(f"\n-- {run.label} vs bare")
        if not run.usable:
            passed = sum(1 for c in base.cases.values() if c.outcome == PASSED)
            print(f"   REGRESSION: {run.problem}; the {passed} tests that pass bare have no "
                  "result under the launcher")
            tail = _log_tail(run.path)
            if tail:
                print(f"   the end of {os.path.splitext(run.path)[0]}.log:")
                print(_indent(tail))
            confirmed_total += max(passed, 1)
            continue
        changes = compare(base, run)
        rerun = reruns.get(run.label)
        attribution = attributions.get(run.label)
        flaky: list[str] = []
        propagation: list[str] = []
        confirmed: list[str] = []
        for nodeid in changes["regressed"] + changes["vanished"]:
            if _passed_in(rerun, nodeid):
                flaky.append(nodeid)
            elif _passed_in(attribution, nodeid):
                propagation.append(nodeid)
            else:
                confirmed.append(nodeid)
        regressed_ids.extend(n for n in changes["regressed"] + changes["vanished"]
                             if n not in regressed_ids)
        confirmed_total += len(confirmed)
        propagation_total += len(propagation)
        if not confirmed and not flaky and not propagation:
            print("   no regression: every test that passes bare passes (or is still "
                  "there) under the launcher")
        for nodeid in confirmed:
            case = run.cases.get(nodeid)
            where = "missing from the launched results" if case is None else case.outcome.upper()
            notes = []
            for other, what in ((rerun, "re-run"), (attribution, "without propagation")):
                if other is not None and other.usable:
                    again = other.cases.get(nodeid)
                    notes.append(f"{what}: {again.outcome if again else 'not run'}")
            note = f" ({'; '.join(notes)})" if notes else ""
            print(f"   REGRESSION {where}{note}: {nodeid}")
            if case is not None and case.message:
                print(_indent(case.message))
        if propagation:
            print(f"   REGRESSION caused by the injected trace-context header: "
                  f"{len(propagation)} test(s) fail again on re-run and pass with "
                  "TELEMETRYFLOW_PROPAGATORS=none (they assert the exact headers on the wire)"
                  + (" [not counted: --allow-propagation]" if args.allow_propagation else ""))
            for nodeid in propagation:
                case = run.cases.get(nodeid)
                first = (case.message.splitlines() or [""])[0] if case is not None else ""
                print(f"      {nodeid}")
                if first:
                    print(f"          {first}")
        for nodeid in flaky:
            case = run.cases.get(nodeid)
            print(f"   flaky (failed once under the launcher, passed on re-run): {nodeid}")
            if case is not None and case.message:
                print(_indent(case.message))
        if changes["pass_to_skip"]:
            print(f"   notice: {len(changes['pass_to_skip'])} test(s) pass bare but are skipped "
                  "under the launcher:")
            for nodeid in changes["pass_to_skip"]:
                reason = (run.cases[nodeid].message.splitlines() or [""])[0]
                print(f"      {nodeid}: {reason}")
        if changes["fixed"]:
            print(f"   info: {len(changes['fixed'])} test(s) fail bare but pass under the "
                  "launcher (flaky or environment-dependent):")
            for nodeid in changes["fixed"]:
                print(f"      {nodeid}")
        if changes["skip_to_pass"]:
            print(f"   info: {len(changes['skip_to_pass'])} test(s) skipped or xfailed bare pass "
                  "(xpass) under the launcher:")
            for nodeid in changes["skip_to_pass"]:
                print(f"      {nodeid}")
        if changes["new"]:
            print(f"   notice: {len(changes['new'])} failing test(s) exist only under the "
                  "launcher:")
            for nodeid in changes["new"]:
                print(f"      {nodeid}")
                if run.cases[nodeid].message:
                    print(_indent(run.cases[nodeid].message))

    if args.ids_out:
        with open(args.ids_out, "w", encoding="utf-8") as handle:
            handle.writelines(f"{n}\n" for n in regressed_ids if "::" in n)

    if args.markdown:
        print("\n| project | run | passed | failed | skipped | errors | total | exit | "
              "seconds |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, counts, total, code, seconds in table:
            print(f"| {args.project} | {label} | {counts[PASSED]} | {counts[FAILED]} | "
                  f"{counts[SKIPPED]} | {counts[ERROR]} | {total} | {code} | {seconds} |")

    counted = confirmed_total + (0 if args.allow_propagation else propagation_total)
    verdict = "REGRESSIONS" if counted else "OK"
    detail = f"{confirmed_total} test(s) pass bare and fail under the launcher"
    if propagation_total:
        detail += f", {propagation_total} more only because of the traceparent header"
        if args.allow_propagation:
            detail += " (allowed)"
    print(f"\n{args.project or 'result'}: {verdict} ({detail})")
    return 1 if counted else 0


if __name__ == "__main__":
    sys.exit(main())
