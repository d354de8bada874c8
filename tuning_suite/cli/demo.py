"""`tuning demo`: the reference workflow end to end (:mod:`tuning_suite.demo`)."""

from __future__ import annotations

import argparse

from tuning_suite.cli.server_extra import needs_server


def register(commands) -> None:
    demo = commands.add_parser("demo", help="the wine-quality XGBoost workflow end to end on embedded defaults")
    demo.add_argument("--workers", type=int, default=4, help="trials run at once")
    demo.add_argument("--trials", type=int, default=50, help="trial budget")
    demo.add_argument("--algorithm", default="auto", choices=("auto", "gp", "tpe", "random", "quasi_random"),
                      help="search algorithm (ASHA stops weak trials whichever is chosen)")
    demo.add_argument("--seed", type=int, default=0, help="the study's seed")
    demo.set_defaults(run=_demo)


@needs_server("tuning demo")
def _demo(args: argparse.Namespace) -> int:
    from tuning_suite import demo

    return demo.main(args)
