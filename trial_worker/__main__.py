"""`python -m trial_worker`: the same as `tuning worker`."""

import os
import sys

# Before numpy loads: one BLAS thread per process (trials run side by side).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from trial_worker.cli import main  # noqa: E402

sys.exit(main())
