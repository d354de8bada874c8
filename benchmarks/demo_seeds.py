#!/usr/bin/env python
"""The reference demo over seeds: does `tuning demo` beat its baseline, on validation and on test?

Runs ``tuning demo --seed S`` for each seed, each in a fresh ``TUNING_HOME`` (exactly what a
new user runs, one at a time: the machine's cores are the demo's), reads the summary it prints,
and writes a table: the baseline's and the champion's validation F1 (what the study chose on)
and test F1 (held out until the end), completed and pruned trials, and wall-clock time.

    python benchmarks/demo_seeds.py --seeds 0-9 --markdown docs/DEMO.md

Targets (issue 19): the best validation F1 beats the baseline's on every seed with a mean gain
of at least +0.8 %, the champion's test F1 is at least the baseline's on 8 of 10 seeds, and a
run takes under a minute on 2 cores. A measurement: it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runs import standard_error

ROOT = Path(__file__).resolve().parent.parent
TARGET_GAIN = 0.008


@dataclass(frozen=True)
class Outcome:
    seed: int
    baseline_val: float
    baseline_test: float
    best_val: float
    best_test: float
    completed: int
    pruned: int
    pruned_where: str
    seconds: float

    @property
    def val_gain(self) -> float:
        return (self.best_val - self.baseline_val) / self.baseline_val

    @property
    def test_gain(self) -> float:
        return (self.best_test - self.baseline_test) / self.baseline_test


def parse(seed: int, out: str, seconds: float) -> Outcome:
    """The numbers of the demo's summary; ValueError naming what is missing."""
    def find(pattern: str, what: str) -> re.Match:
        match = re.search(pattern, out)
        if match is None:
            raise ValueError(f"seed {seed}: the demo printed no {what}:\n{out[-2000:]}")
        return match

    baseline = find(r"\n\s+baseline\s+(\S+)\s+(\S+)\s", "baseline row")
    best = find(r"\n\s+best \(trial \d+\)\s+(\S+)\s+(\S+)\s", "best row")
    study = find(r"study \S+: (\d+) completed, (\d+) pruned by ASHA on \S+(?: \((.*)\))?, \d+ failed", "trial counts")
    return Outcome(seed, float(baseline[1]), float(baseline[2]), float(best[1]), float(best[2]),
                   int(study[1]), int(study[2]), study[3] or "", seconds)


def run(seed: int, extra: list[str]) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"demo-{seed}-") as home:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tuning_suite", "demo", "--seed", str(seed), *extra],
            cwd=ROOT, env={**os.environ, "TUNING_HOME": home}, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"seed {seed}: tuning demo exited {result.returncode}:\n{result.stdout[-3000:]}"
                         f"\n{result.stderr[-3000:]}")
    return parse(seed, result.stdout, seconds)


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-", 1)
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def report(outcomes: list[Outcome], command: str) -> str:
    n = len(outcomes)
    val_gains = [o.val_gain for o in outcomes]
    beat_val = sum(o.best_val > o.baseline_val for o in outcomes)
    held_test = sum(o.best_test >= o.baseline_test for o in outcomes)
    sem = standard_error(val_gains)
    test_gains = [o.test_gain for o in outcomes]
    test_sem = standard_error(test_gains)
    slowest = max(o.seconds for o in outcomes)
    lines = [
        "# The reference demo over seeds",
        "",
        "Written by `benchmarks/demo_seeds.py`; regenerate it with the command below. Each row is one",
        "`tuning demo --seed S` in a fresh `TUNING_HOME`, run alone, as a new user runs it: 50 trials, 4 at",
        "a time, `auto`, the baseline's configuration first, ASHA on validation log-loss. The study chooses",
        "on validation F1; the test set is scored once, at the end, for the baseline and the champion.",
        "With four workers, which trials have finished when the model proposes depends on timing, so a",
        "seed does not replay exactly: read the spread over seeds, not one row.",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"- Command: `{command}`",
        "",
        "| seed | completed / pruned | where pruned | baseline val F1 | best val F1 | val gain | baseline test F1 "
        "| champion test F1 | test gain | seconds |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in sorted(outcomes, key=lambda o: o.seed):
        lines.append(f"| {o.seed} | {o.completed} / {o.pruned} | {o.pruned_where or '-'} | {o.baseline_val:.4f} "
                     f"| {o.best_val:.4f} | {o.val_gain:+.2%} | {o.baseline_test:.4f} | {o.best_test:.4f} "
                     f"| {o.test_gain:+.2%} | {o.seconds:.0f} |")
    lines += [
        "",
        f"- Validation F1: the best beats the baseline on {beat_val}/{n} seeds; mean gain "
        f"{statistics.mean(val_gains):+.2%} ± {sem:.2%} (standard error); target: {n}/{n} and at least "
        f"{TARGET_GAIN:+.1%}: **{'met' if beat_val == n and statistics.mean(val_gains) >= TARGET_GAIN else 'missed'}**.",
        f"- Test F1: the champion's is at least the baseline's on {held_test}/{n} seeds; mean gain "
        f"{statistics.mean(test_gains):+.2%} ± {test_sem:.2%}; target: 8 of 10: "
        f"**{'met' if held_test >= 0.8 * n else 'missed'}**.",
        f"- Time: {statistics.mean(o.seconds for o in outcomes):.0f} s on average, {slowest:.0f} s at most "
        f"(the whole command: start-up, baseline, 50 trials, registration); target: under 60 s: "
        f"**{'met' if slowest < 60 else 'missed'}**.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,7")
    parser.add_argument("--markdown", type=Path, help="write the table here too (e.g. docs/DEMO.md)")
    parser.add_argument("demo_args", nargs="*", help="more arguments for tuning demo (after --)")
    args = parser.parse_args(argv)
    outcomes = []
    for seed in seeds_of(args.seeds):
        outcome = run(seed, args.demo_args)
        print(f"seed {seed}: val {outcome.baseline_val:.4f} -> {outcome.best_val:.4f} ({outcome.val_gain:+.2%}), "
              f"test {outcome.baseline_test:.4f} -> {outcome.best_test:.4f} ({outcome.test_gain:+.2%}), "
              f"{outcome.completed} completed, {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    command = "python benchmarks/demo_seeds.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = report(outcomes, command.strip())
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
