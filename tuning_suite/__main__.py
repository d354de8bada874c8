"""`python -m tuning_suite`: the `tuning` command."""

import sys

from tuning_suite.cli import main

sys.exit(main())
