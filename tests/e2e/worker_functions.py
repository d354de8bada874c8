"""Train functions the worker tests import by path (``tests.e2e.worker_functions:NAME``)."""

from __future__ import annotations

import json
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

    With ``$TEST_LOG_CONFIG`` set, each trial first logs its params as the artifact ``config.json``.
    In a process with ``$TEST_HANG_AT=N``, the N-th trial hangs for good after its first report,
    having written its trial id to ``$TEST_HANG_MARKER``: the worker is then certainly in the
    middle of a trial (leased, reported, heartbeating) when a test SIGKILLs it.
    """
    global _trials_started
    _trials_started += 1
    hang = _trials_started == int(os.environ.get("TEST_HANG_AT", "0"))
    if os.environ.get("TEST_LOG_CONFIG"):
        config = ctx.scratch_dir() / "config.json"
        config.write_text(json.dumps(ctx.params, sort_keys=True))
        ctx.log_artifact(config)
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


_segments_started = 0


def pbt_toy(ctx) -> dict[str, float]:
    """The toy problem of the PBT paper as pbt segments: gradient ascent on
    Q_hat(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2), scored by Q = 1.2 - |theta|^2.

    theta lives in the checkpoint (``theta.json``, with the step and the trial that saved it),
    and the run records which trial's checkpoint it resumed from (param ``resumed_from``), so
    tests can check every segment against its ``pbt_segment``. ``$TEST_HANG_AT=N``: the N-th
    segment of this process hangs after its first report (see :func:`stepped`).
    """

    global _segments_started
    _segments_started += 1
    hang = _segments_started == int(os.environ.get("TEST_HANG_AT", "0"))
    theta, resumed_from = [0.9, 0.9], "none"
    if ctx.checkpoint is not None:
        saved = json.loads((ctx.checkpoint / "theta.json").read_text())
        if saved["step"] != ctx.start_step:
            raise RuntimeError(f"the checkpoint is of step {saved['step']}, the segment starts at {ctx.start_step}")
        theta, resumed_from = saved["theta"], str(saved["trial_id"])
    ctx.log_params({"resumed_from": resumed_from})
    h = (ctx.params["h0"], ctx.params["h1"])
    q = 1.2 - theta[0] ** 2 - theta[1] ** 2
    for step in range(ctx.start_step + 1, int(ctx.budget) + 1):
        time.sleep(STEP_SECONDS)
        theta = [t - 0.1 * 2 * hi * t for t, hi in zip(theta, h)]
        q = 1.2 - theta[0] ** 2 - theta[1] ** 2
        ctx.report(step, q=q)
        if hang:
            marker = os.environ["TEST_HANG_MARKER"]
            with open(marker + ".part", "w") as handle:
                handle.write(str(ctx.trial_id))
            os.replace(marker + ".part", marker)
            time.sleep(3600)
    folder = ctx.scratch_dir() / "out"
    folder.mkdir()
    (folder / "theta.json").write_text(json.dumps({"theta": theta, "step": int(ctx.budget),
                                                   "trial_id": ctx.trial_id}))
    ctx.save_checkpoint(folder)
    return {"q": q}
