"""Runs benchmark jobs, keeping every finished run in a store (JSON lines) so that a long
benchmark resumes where it stopped and renders again without rerunning. Shared by
sample_efficiency.py, multi_objective.py and constrained.py, whose outcomes are dataclasses
with a ``job`` (a frozen dataclass), JSON-able fields and an ``error`` string."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def load_store(path: Path | None, job_type: type, outcome_type: type) -> dict[Any, Any]:
    """The outcomes in ``path`` by job (the last one wins); nothing when there is no store."""
    if path is None or not path.exists():
        return {}
    stored = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        job = job_type(**record.pop("job"))
        stored[job] = outcome_type(job=job, **record)
    return stored


def run_jobs(jobs: Sequence[Any], run_job: Callable[[Any], Any], *, processes: int, store: Path | None,
             outcome_type: type, describe: Callable[[Any], str], render_only: bool = False) -> list[Any]:
    """Every job's outcome: from the store, else run (``processes`` at a time, each in a fresh
    spawned process) and appended to the store as it ends, with a progress line on stderr."""
    job_type = type(jobs[0]) if jobs else object
    stored = load_store(store, job_type, outcome_type)
    outcomes = [stored[job] for job in jobs if job in stored]
    todo = [] if render_only else [job for job in jobs if job not in stored]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for i, outcome in enumerate(pool.imap_unordered(run_job, todo), 1):
            outcomes.append(outcome)
            if store:
                with store.open("a") as out:
                    out.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
            print(f"[{i}/{len(todo)}] {outcome.job.problem} {outcome.job.method} seed {outcome.job.seed}: "
                  f"{outcome.error or describe(outcome)} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
    return outcomes


def standard_error(values: Sequence[float]) -> float:
    """The standard error of the mean (NaN below two values)."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def failures(outcomes: Sequence[Any]) -> list[str]:
    """Markdown lines naming the runs that failed (they are left out of the tables), or none."""
    errors = sorted({f"{o.job.method} on {o.job.problem}: {o.error}" for o in outcomes if o.error})
    return ["Runs that failed (left out):", "", *[f"- {e}" for e in errors], ""] if errors else []


def publish(report: str, markdown: Path | None) -> None:
    """Prints the report, and writes it to ``markdown`` when one is given."""
    print(report)
    if markdown:
        markdown.write_text(report + "\n")
