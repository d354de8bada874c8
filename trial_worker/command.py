"""Tune any program: an external command as a train function.

    tuning worker --study wine -- Rscript train.R
    tuning worker --study wine -- python train.py --data wine.csv

The command gets the trial's parameters as JSON, in ``$TUNING_PARAMS`` and in the file
named by ``$TUNING_PARAMS_FILE``, with ``$TUNING_TRIAL_ID``, ``$TUNING_TRIAL_NUMBER``,
``$TUNING_STUDY``, ``$TUNING_RUN_ID`` (when tracking), ``$TUNING_BUDGET`` (multi-fidelity
studies), ``$TUNING_CONSTRAINTS`` (constrained studies: the names, as a JSON list) and
``$TUNING_OUTPUT_DIR``: files it writes there become the run's artifacts.

In a pbt study (population-based training) each trial is one segment of a member's
training, and the command also gets ``$TUNING_PBT_SEGMENT`` (JSON: member, generation,
start_step, end_step, last, parent_trial_id), ``$TUNING_START_STEP`` (train from there up
to ``$TUNING_BUDGET``), ``$TUNING_CHECKPOINT_DIR`` (the checkpoint to resume from, a local
folder; absent for a fresh start) and ``$TUNING_SAVE_CHECKPOINT_DIR``: what it writes
there becomes this trial's checkpoint once it exits with 0 (required unless ``last``).

It speaks through JSON lines on stdout; anything else it prints is passed through:

    {"step": 10, "val_loss": 0.41}     an intermediate report (logged, and shown to the pruner)
    {"val_loss": 0.38, "val_f1": 0.7}  final metrics (several such lines are merged)
    {"constraints": {"memory_over": -1.5}}
                                       the constraint values of a constrained study (by
                                       name, or a list in declared order; <= 0: satisfied)

When the pruner says stop, the command gets SIGTERM (SIGKILL ``stop_grace`` seconds later)
and the trial ends pruned. A non-zero exit fails the trial with the end of its stderr as the
reason; exit 0 without final metrics uses the last reported values.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from trial_worker.context import TrialContext
from trial_worker.exceptions import LeaseLost, TrialPruned

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20


class CommandFailed(Exception):
    """The command exited with a non-zero status, or spoke malformed JSON."""


def _metrics(record: Mapping[str, object], line_number: int) -> dict[str, float]:
    metrics = {}
    for name, value in record.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CommandFailed(f"output line {line_number}: {name!r} is {value!r:.60}, not a number")
        metrics[name] = float(value)
    return metrics


class CommandTrain:
    """A train function that runs ``argv`` once per trial (see the module's docstring)."""

    def __init__(self, argv: Sequence[str], *, cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None, stop_grace: float = 10.0, echo: bool = True):
        if not argv:
            raise ValueError("no command given")
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env or {})
        self.stop_grace = stop_grace
        self.echo = echo

    def __repr__(self) -> str:
        return f"CommandTrain({self.argv!r})"

    def __call__(self, ctx: TrialContext) -> dict[str, float] | None:
        with tempfile.TemporaryDirectory(prefix=f"tuning-trial-{ctx.trial_id}-") as folder:
            output_dir = Path(folder, "output")
            output_dir.mkdir()
            params_file = Path(folder, "params.json")
            params = json.dumps(ctx.params)
            params_file.write_text(params, encoding="utf-8")
            env = {**os.environ, **self.env, "TUNING_PARAMS": params, "TUNING_PARAMS_FILE": str(params_file),
                   "TUNING_TRIAL_ID": str(ctx.trial_id), "TUNING_TRIAL_NUMBER": str(ctx.trial_number),
                   "TUNING_STUDY": ctx.study, "TUNING_OUTPUT_DIR": str(output_dir)}
            if ctx.run_id is not None:
                env["TUNING_RUN_ID"] = ctx.run_id
            if ctx.budget is not None:
                env["TUNING_BUDGET"] = f"{ctx.budget:g}"
            if ctx.constraint_names:
                env["TUNING_CONSTRAINTS"] = json.dumps(ctx.constraint_names)
            save_dir = self._segment_env(ctx, env, Path(folder))
            final = self._run(ctx, env)
            if ctx.run_id is not None and any(output_dir.iterdir()):
                ctx.log_artifacts(output_dir)
            if save_dir is not None and any(save_dir.iterdir()):
                ctx.save_checkpoint(save_dir)
        return final or None

    @staticmethod
    def _segment_env(ctx: TrialContext, env: dict[str, str], folder: Path) -> Path | None:
        """A pbt segment's variables; returns the folder the command saves its checkpoint in."""
        segment = ctx.pbt_segment
        if segment is None:
            return None
        facts = {"member": segment.member, "generation": segment.generation, "start_step": segment.start_step,
                 "end_step": segment.end_step, "last": segment.last,
                 "parent_trial_id": segment.parent_trial_id if segment.HasField("parent_trial_id") else None}
        save_dir = folder / "checkpoint"
        save_dir.mkdir()
        env.update(TUNING_PBT_SEGMENT=json.dumps(facts), TUNING_START_STEP=str(segment.start_step),
                   TUNING_SAVE_CHECKPOINT_DIR=str(save_dir))
        if (checkpoint := ctx.checkpoint) is not None:
            env["TUNING_CHECKPOINT_DIR"] = str(checkpoint)
        return save_dir

    def _run(self, ctx: TrialContext, env: dict[str, str]) -> dict[str, float]:
        # Its own process group, so that stopping it stops whatever it started too.
        process = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                   start_new_session=True)
        stopped = threading.Event()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        reader = threading.Thread(target=self._read_stderr, args=(process, stderr_tail, ctx.trial_number),
                                  daemon=True)
        reader.start()
        watcher = threading.Thread(target=self._watch, args=(process, ctx, stopped), daemon=True)
        watcher.start()
        final: dict[str, float] = {}
        try:
            for number, line in enumerate(process.stdout, start=1):
                record = self._parse(line, number, ctx.trial_number)
                if record is None:
                    continue
                if "constraints" in record:
                    self._constraints(ctx, record.pop("constraints"), number)
                    if not record:
                        continue
                step = record.pop("step", None)
                if step is None:
                    final.update(_metrics(record, number))
                    continue
                if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                    raise CommandFailed(f"output line {number}: step must be a whole number >= 0, got {step!r:.40}")
                metrics = _metrics(record, number)
                if metrics and ctx.report(step, **metrics):
                    break
        except CommandFailed:
            self._terminate(process)
            raise
        finally:
            if ctx.should_stop:
                self._terminate(process)
            returncode = process.wait()
            stopped.set()
            reader.join(5)
        if ctx.lost:
            raise LeaseLost(ctx.lost)
        if ctx.should_stop:
            raise TrialPruned("the pruner stopped the command")
        if returncode != 0:
            tail = "".join(stderr_tail).strip()
            raise CommandFailed(f"{self.argv[0]} exited with status {returncode}" + (f": {tail}" if tail else ""))
        for name, value in final.items():
            if not math.isfinite(value):
                raise CommandFailed(f"final metric {name} is {value}")
        return final

    @staticmethod
    def _constraints(ctx: TrialContext, values: object, line_number: int) -> None:
        if not isinstance(values, (dict, list)) or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in
                (values.values() if isinstance(values, dict) else values)):
            raise CommandFailed(f"output line {line_number}: constraints must be an object of numbers by name "
                                f"or a list of numbers, got {values!r:.60}")
        try:
            ctx.report_constraints(values)
        except ValueError as error:
            raise CommandFailed(f"output line {line_number}: {error}") from None

    def _parse(self, line: str, number: int, trial_number: int) -> dict | None:
        text = line.strip()
        if text.startswith("{"):
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                return record
        if self.echo and text:
            print(f"[trial {trial_number}] {line.rstrip()}", flush=True)
        return None

    def _read_stderr(self, process: subprocess.Popen, tail: collections.deque, trial_number: int) -> None:
        for line in process.stderr:
            tail.append(line)
            if self.echo:
                print(f"[trial {trial_number}] {line.rstrip()}", file=sys.stderr, flush=True)

    def _watch(self, process: subprocess.Popen, ctx: TrialContext, stopped: threading.Event) -> None:
        """Stops the command when the trial is lost or handed back while it is silent."""
        while not stopped.wait(0.2):
            if ctx.lost and process.poll() is None:
                self._terminate(process)
                return

    def _terminate(self, process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(self.stop_grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
