"""A pruned trial keeps no final values: where it stopped is its last measurement.

Before, a pruned trial's ``metrics`` repeated its last report (an intermediate value that
could read better than any finished trial's). Values that no measurement holds (a prune
told with values and no report) become a measurement at step 0, so nothing is lost.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_trials = sa.table(
    "trials", sa.column("id", sa.BigInteger), sa.column("state", sa.String), sa.column("metrics", sa.JSON),
    sa.column("last_step", sa.BigInteger), sa.column("last_metrics", sa.JSON),
    sa.column("last_measurement_ms", sa.BigInteger), sa.column("end_ms", sa.BigInteger),
    sa.column("create_ms", sa.BigInteger),
)
_measurements = sa.table(
    "measurements", sa.column("trial_id", sa.BigInteger), sa.column("step", sa.BigInteger),
    sa.column("metrics", sa.JSON), sa.column("create_ms", sa.BigInteger),
)


def upgrade() -> None:
    conn = op.get_bind()
    unreported = conn.execute(
        sa.select(_trials.c.id, _trials.c.metrics, _trials.c.end_ms, _trials.c.create_ms)
        .where(_trials.c.state == "PRUNED", _trials.c.last_step.is_(None), _trials.c.metrics.is_not(None))
    ).all()
    for row in unreported:
        if not row.metrics:
            continue
        when = row.end_ms or row.create_ms
        conn.execute(_measurements.insert().values(trial_id=row.id, step=0, metrics=row.metrics, create_ms=when))
        conn.execute(_trials.update().where(_trials.c.id == row.id)
                     .values(last_step=0, last_metrics=row.metrics, last_measurement_ms=when))
    conn.execute(_trials.update().where(_trials.c.state == "PRUNED").values(metrics=None))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(_trials.update().where(_trials.c.state == "PRUNED", _trials.c.last_step.is_not(None))
                 .values(metrics=_trials.c.last_metrics))
