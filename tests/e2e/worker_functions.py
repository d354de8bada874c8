"""Train functions the worker tests import by path (``tests.e2e.worker_functions:NAME``)."""

from __future__ import annotations

import os
import tempfile
import time

# Per-step pause, so that tests can catch a trial mid-training.
STEP_SECONDS = float(os.environ.get("TEST_STEP_SECONDS", "0"))
STEPS = int(os.environ.get("TEST_STEPS", "5"))


def loss_at(params: dict, step: int) -> float:
    return (params["x"] - 1.0) ** 2 + 1.0 / (step + 1)


def quadratic(ctx) -> dict[str, float]:
    """Reports ``loss`` at steps 1..STEPS, logs a param and an artifact-free metric, returns the final loss."""
    ctx.log_params({"steps": STEPS})
    for step in range(1, STEPS + 1):
        time.sleep(STEP_SECONDS)
        if ctx.report(step, loss=loss_at(ctx.params, step)):
            return None
    ctx.log_metrics({"extra": 1.0})
    return {"loss": loss_at(ctx.params, STEPS), "x_abs": abs(ctx.params["x"])}


def broken(ctx) -> dict[str, float]:
    raise RuntimeError(f"no data for x={ctx.params['x']:.3f}")


def silent(ctx) -> float:
    """Trains longer than the lease without a single report: only heartbeats keep the lease."""
    time.sleep(float(os.environ.get("TEST_SILENT_SECONDS", "2.5")))
    return (ctx.params["x"] - 1.0) ** 2


def traced(ctx) -> dict[str, float]:
    """Reports ``loss`` at steps 1..3 and logs a small artifact: every kind of span a trial makes."""
    for step in range(1, 4):
        if ctx.report(step, loss=loss_at(ctx.params, step)):
            return None
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "notes.txt")
        with open(path, "w") as notes:
            notes.write("trained\n")
        ctx.log_artifact(path)
    return {"loss": loss_at(ctx.params, 3)}


_trials_started = 0


def stepped(ctx) -> dict[str, float]:
    """Reports ``loss`` at steps 1..STEPS (a pruner may stop it), returns the final loss.

    In a process with ``$TEST_HANG_AT=N``, the N-th trial hangs for good after its first report,
    having written its trial id to ``$TEST_HANG_MARKER``: the worker is then certainly in the
    middle of a trial (leased, reported, heartbeating) when a test SIGKILLs it.
    """
    global _trials_started
    _trials_started += 1
    hang = _trials_started == int(os.environ.get("TEST_HANG_AT", "0"))
    for step in range(1, STEPS + 1):
        time.sleep(STEP_SECONDS)
        stop = ctx.report(step, loss=loss_at(ctx.params, step))
        if hang:
            marker = os.environ["TEST_HANG_MARKER"]
            with open(marker + ".part", "w") as handle:
                handle.write(str(ctx.trial_id))
            os.replace(marker + ".part", marker)
            time.sleep(3600)
        if stop:
            return None
    return {"loss": loss_at(ctx.params, STEPS)}
