import os
import sys

# Before numpy loads: BLAS threads would fight the RPC threads for the cores, and GP fits
# on a few hundred points gain nothing from them (measured: erratic 0.4-13 s suggestions).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from suggestion_service.server import main  # noqa: E402

sys.exit(main())
