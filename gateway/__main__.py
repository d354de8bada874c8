"""`python -m gateway`: the same as `tuning serve gateway`."""

import sys

from gateway.server import main

sys.exit(main())
