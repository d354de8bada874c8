"""`tuning study create | list | show | export | stop | resume | complete | delete`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tuning_common.settings import add_option


def register(commands) -> None:
    study = commands.add_parser("study", help="create, list, show and manage studies")
    connection = argparse.ArgumentParser(add_help=False)
    add_option(connection, "--address", env="TUNING_SUGGESTION_ADDRESS", default="",
               help="suggestion service address (default: the suite `tuning up` recorded in "
                    "$TUNING_HOME/suite.json, else 127.0.0.1:50051)")
    actions = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")

    def action(name: str, **kwargs) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=[connection], **kwargs)

    create = action("create", help="get-or-create a study from a YAML or JSON file")
    create.add_argument("file", help="a study file: name, parameters, objectives, ... (see docs/WORKERS.md; the "
                                     "older proto JSON form {name, spec} is read too)")
    create.set_defaults(run=_study_create)
    export = action("export", help="print a study's file (YAML), which `tuning study create` reads back")
    export.add_argument("name")
    export.set_defaults(run=_study_export)
    action("list", help="list studies").set_defaults(run=_study_list)
    show = action("show", help="a study and its trials")
    show.add_argument("name")
    show.add_argument("--limit", type=int, default=50, help="show the last N trials")
    show.add_argument("--json", action="store_true", help="print the study as JSON")
    show.set_defaults(run=_study_show)
    for verb, state in (("stop", "STOPPED"), ("resume", "ACTIVE"), ("complete", "COMPLETED")):
        sub = action(verb, help=f"set the study {state.lower()}")
        sub.add_argument("name")
        sub.set_defaults(run=_study_set_state(state))
    delete = action("delete", help="delete a study and its trials")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="really delete")
    delete.set_defaults(run=_study_delete)


def _client(args: argparse.Namespace):
    from trial_worker import SuggestionClient
    from trial_worker.local_suite import find_address

    found = find_address("suggestion", args.address, flag="--address")
    print(f"tuning: talking to {found.describe()}", file=sys.stderr, flush=True)
    return SuggestionClient(found.address)


def _format_value(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _study_create(args: argparse.Namespace) -> int:
    from trial_worker.cli import load_study_file

    try:
        request = load_study_file(args.file)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with _client(args) as client:
        study = client.create_study_from_proto(request.name, request.spec)
    print(f"{'created' if study.created else 'exists, same spec:'} {study.name}")
    return 0


def _study_list(args: argparse.Namespace) -> int:
    from tuning.suggestion.v1 import study_pb2 as pb

    with _client(args) as client:
        rows = [(s.name, pb.StudyState.Name(s.state).removeprefix("STUDY_STATE_"), s.spec.algorithm.name,
                 s.trial_counts.completed, s.trial_counts.active, s.spec.max_trials or "-")
                for s in client.list_studies()]
    _table(["study", "state", "algorithm", "completed", "active", "max_trials"], rows)
    return 0


def _study_show(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from tuning.suggestion.v1 import study_pb2 as pb

    with _client(args) as client:
        study = client.get_study(args.name)
        if args.json:
            print(json_format.MessageToJson(study.info, preserving_proto_field_name=True))
            return 0
        trials = list(study.trials())
        best_response = study.best_response()
    best = {t.id for t in best_response.trials}
    info = study.info
    objectives = ", ".join(f"{o.metric} ({pb.Direction.Name(o.direction).removeprefix('DIRECTION_').lower()})"
                           for o in info.spec.objectives)
    print(f"study      {info.name}  [{pb.StudyState.Name(info.state).removeprefix('STUDY_STATE_')}]")
    print(f"objectives {objectives}")
    print(f"algorithm  {info.spec.algorithm.name}  seed {info.spec.seed}  max_trials {info.spec.max_trials or '-'}"
          f"  max_parallel {info.spec.max_parallel_trials or '-'}")
    constraints = list(info.spec.constraints)
    if constraints:
        print(f"constraints {', '.join(constraints)} (<= 0 is feasible)")
    if info.spec.prior_studies:
        print(f"priors     {', '.join(info.spec.prior_studies)} (transfer learning)")
    names = [p.name for p in info.spec.parameters]
    rows = []
    for t in trials[-args.limit:]:
        params = {k: _format_value(getattr(v, v.WhichOneof("kind"))) for k, v in t.parameters.items()}
        metrics = " ".join(f"{m.name}={m.value:.6g}" for m in t.metrics)
        if t.state == pb.TRIAL_STATE_PRUNED and t.HasField("last_measurement"):
            # Not a result: where it stopped, said as such.
            last = t.last_measurement
            metrics = f"pruned at step {last.step}: " + " ".join(f"{m.name}={m.value:.6g}" for m in last.metrics)
        row = [("*" if t.id in best else "") + str(t.number), pb.TrialState.Name(t.state).removeprefix("TRIAL_STATE_"),
               *[params.get(n, "") for n in names]]
        if constraints:
            # An infeasible trial keeps its metrics; the column says why it is never the best.
            values = " ".join(f"{n}={v:.6g}" for n, v in zip(constraints, t.constraints))
            row.append("" if not t.HasField("feasible") else f"{'yes' if t.feasible else 'NO'} {values}")
        rows.append([*row, metrics or t.reason])
    _table(["#", "state", *names, *(["feasible"] if constraints else []), "result"], rows)
    several = len(info.spec.objectives) > 1
    print(f"{len(trials)} trials; * marks the " + ("Pareto set" if several else "best")
          + ("; only feasible trials can be best" if constraints else ""))
    if several and best_response.HasField("hypervolume"):
        reference = ", ".join(f"{o.metric}={r:.6g}" for o, r in zip(info.spec.objectives, best_response.reference_point))
        given = " (from the spec)" if all(o.HasField("reference_point") for o in info.spec.objectives) else ""
        print(f"hypervolume {best_response.hypervolume:.6g}  reference point {reference}{given}")
    return 0


def _study_export(args: argparse.Namespace) -> int:
    from trial_worker import study_file

    with _client(args) as client:
        info = client.get_study(args.name).info
    print(study_file.dump(info.name, info.spec), end="")
    return 0


def _study_set_state(state_name: str):
    def command(args: argparse.Namespace) -> int:
        from tuning.suggestion.v1 import study_pb2 as pb

        with _client(args) as client:
            study = client.get_study(args.name)
            study.set_state(pb.StudyState.Value(f"STUDY_STATE_{state_name}"))
        print(f"{args.name}: {state_name}")
        return 0

    return command


def _study_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"refusing to delete {args.name!r} and all its trials without --yes", file=sys.stderr)
        return 2
    with _client(args) as client:
        client.delete_study(args.name)
    print(f"deleted {args.name}")
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns padded to their widest cell; the last column is printed in full, a multi-line
    cell (a failed trial's reason) continuing under itself."""
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    indent = sum(w + 2 for w in widths)
    for row in cells:
        first, *more = row[-1].splitlines() or [""]
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), first]).rstrip())
        for line in more:
            print((" " * indent + line).rstrip())
