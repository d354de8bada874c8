"""Searches compiled to SQL give the same exact results on SQLite and PostgreSQL.

Each test runs once per backend (the ``database_url`` fixture) over the same rows; the cases of
one test are subtests, so one database serves them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tracking_service.persistence import tables as t
from tracking_service.persistence.search_sql import (
    experiment_condition,
    experiment_ordering,
    model_version_condition,
    model_version_ordering,
    registered_model_condition,
    registered_model_ordering,
    run_condition,
    run_ordering,
)
from tuning_types.search import (
    EXPERIMENTS,
    MAX_COMPARISONS,
    MAX_NESTING,
    MAX_ORDER_KEYS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    RUNS,
    parse_filter,
    parse_order_by,
)

ALL = frozenset(range(30))
NAMES = {3: "Alpha", 4: "alpha", 5: "ALPHA-beta"}
PARAM_P = {6: "it's 100%", 8: "100 percent", 9: "it_s", 10: "a*b?[c]", 11: "axxb", 12: "c"}
TEAMS = ("ML", "ml", "Ml-ops", None)  # by run number % 4


def rid(i: int) -> str:
    return f"r{i:02d}"


def _run(i: int) -> dict:
    start = 1000 + (i // 2) * 10  # pairs of runs start together, so the run id breaks ties
    status = ("FINISHED", "RUNNING", "FAILED")[i % 3]
    trial = 10 <= i <= 14
    return {
        "id": rid(i), "experiment_id": 1 if i < 20 else 2, "name": NAMES.get(i, f"run-{i}"), "status": status,
        "lifecycle_stage": "deleted" if i == 29 else "active", "start_ms": start,
        "end_ms": None if status == "RUNNING" else start + 5, "parent_run_id": "r00" if 1 <= i <= 4 else None,
        "run_group": "", "user": "ann" if i % 2 == 0 else "bob", "artifact_uri": "file:///tmp",
        "trial_study": "s1" if trial else None, "trial_id": i if trial else None,
        "trial_number": i - 10 if trial else None, "create_ms": start, "update_ms": start,
    }


def _metrics() -> Iterator[tuple[int, str, float]]:
    for i in range(30):
        if i == 7:
            yield i, "loss", float("nan")
        elif i != 13:
            yield i, "loss", (i % 10) / 10
    yield from ((20, "score", -2.5e3), (21, "score", 1e10), (22, "score", -0.5))
    yield from ((i, "val.f1", value) for i, value in enumerate((0.55, 0.65, 0.75, 0.85, 0.95)))
    yield from ((1, "eval/loss", 0.25), (2, "val f1", 0.5))


def _params() -> Iterator[tuple[int, str, str]]:
    for i in range(30):
        if i != 13:
            yield i, "depth", str(i % 5)
        yield i, "opt", "adam" if i % 2 == 0 else ("SGD" if i < 10 else "sgd")
    yield from ((i, "p", value) for i, value in PARAM_P.items())


def _tags() -> Iterator[tuple[int, str, str]]:
    yield from ((i, "team", TEAMS[i % 4]) for i in range(30) if TEAMS[i % 4])
    yield from ((i, "mlflow.note", "hello") for i in range(3))


EXPERIMENT_ROWS = [(1, "wine-a", 100, 500), (2, "Wine-b", 200, 300), (3, "iris", 300, 400), (4, "wine_c", 300, 100)]
EXPERIMENT_TAGS = [
    (1, "team", "ml"), (1, "owner", "ann"), (2, "team", "ML"), (4, "team", "ops"), (4, "note", "it's 50%"),
]
MODEL_ROWS = [(1, "wine", 10, 40), (2, "Wine-large", 20, 30), (3, "iris", 30, 20)]
MODEL_TAGS = [(1, "task", "classification"), (2, "task", "regression")]
# name: (model id, version, source, run id, stage)
VERSIONS = {
    "a": (1, 1, "s3://b/wine/1", "r00", "None"),
    "b": (1, 2, "s3://b/wine/2", "r01", "Production"),
    "c": (1, 3, "file:///wine/3", None, "Staging"),
    "d": (2, 1, "s3://b/large/1", "r01", "Production"),
    "e": (3, 1, "gs://iris/1", "r02", "Archived"),
}
VERSION_TAGS = [(1, 2, "validated", "true"), (2, 1, "validated", "false")]


def _insert_all(conn: sa.Connection) -> None:
    conn.execute(t.experiments.insert(), [
        {"id": i, "name": name, "artifact_location": "file:///tmp", "lifecycle_stage": "active", "create_ms": create,
         "update_ms": update} for i, name, create, update in EXPERIMENT_ROWS])
    conn.execute(t.experiment_tags.insert(), [
        {"experiment_id": i, "key": key, "value": value} for i, key, value in EXPERIMENT_TAGS])
    conn.execute(t.runs.insert(), [_run(i) for i in range(30)])
    conn.execute(t.latest_metrics.insert(), [
        {"run_id": rid(i), "key": key, "step": 0, "timestamp_ms": 0, "value": 0.0 if value != value else value,
         "is_nan": value != value} for i, key, value in _metrics()])
    # value_head as the repository writes it (the first VALUE_HEAD characters).
    conn.execute(t.params.insert(), [{"run_id": rid(i), "key": key, "value": value, "value_head": value[:t.VALUE_HEAD]}
                                     for i, key, value in _params()])
    conn.execute(t.tags.insert(), [{"run_id": rid(i), "key": key, "value": value, "value_head": value[:t.VALUE_HEAD]}
                                   for i, key, value in _tags()])
    conn.execute(t.registered_models.insert(), [
        {"id": i, "name": name, "create_ms": create, "update_ms": update} for i, name, create, update in MODEL_ROWS])
    conn.execute(t.registered_model_tags.insert(), [
        {"model_id": i, "key": key, "value": value} for i, key, value in MODEL_TAGS])
    conn.execute(t.model_versions.insert(), [
        {"model_id": model, "version": version, "source": source, "storage_uri": source, "run_id": run,
         "status": "READY", "stage": stage, "create_ms": n, "update_ms": n}
        for n, (model, version, source, run, stage) in enumerate(VERSIONS.values())])
    conn.execute(t.model_version_tags.insert(), [
        {"model_id": model, "version": version, "key": key, "value": value}
        for model, version, key, value in VERSION_TAGS])


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        _insert_all(conn)
    yield engine
    engine.dispose()


def search_runs(engine: sa.Engine, text: str, order_by: list[str] | None = None) -> list[str]:
    dialect = engine.dialect.name
    query = sa.select(t.runs.c.id).where(run_condition(parse_filter(text, RUNS), dialect))
    query = query.order_by(*run_ordering(parse_order_by(order_by or [], RUNS), dialect))
    with engine.connect() as conn:
        return list(conn.scalars(query))


def ids(numbers) -> set[str]:
    return {rid(i) for i in numbers}


def where(predicate) -> frozenset[int]:
    return frozenset(i for i in range(30) if predicate(i))


RUN_FILTERS = [
    ("", ALL),
    ("metrics.loss > 0.75", {8, 9, 18, 19, 28, 29}),
    # Run 7's NaN is stored as 0 and must not pass for it.
    ("metrics.loss = 0", {0, 10, 20}),
    ("metrics.loss <= 0.1", {0, 1, 10, 11, 20, 21}),
    ("metrics.loss != 0.5", ALL - {5, 15, 25, 7, 13}),
    ("metrics.loss IS NULL", {13}),
    ("metrics.loss IS NOT NULL", ALL - {13}),
    ("metrics.loss IN (0.1, 0.2)", {1, 2, 11, 12, 21, 22}),
    ("metrics.loss NOT IN (0, 0.1)", ALL - {0, 10, 20, 1, 11, 21, 7, 13}),
    ("metrics.score < -1e2", {20}),
    ("metrics.score > 1E9", {21}),
    ("metrics.score >= -.5 AND metrics.score < 0", {22}),
    ("metrics.val.f1 > 0.7", {2, 3, 4}),
    ('metric."val.f1" < 0.6', {0}),
    ("metrics.eval/loss = 0.25 OR metrics.`val f1` = 0.5", {1, 2}),
    ("params.opt = 'sgd'", where(lambda i: i % 2 and i >= 10)),
    ("params.opt LIKE 'sgd'", where(lambda i: i % 2 and i >= 10)),
    ("params.opt ILIKE 'sgd'", where(lambda i: i % 2)),
    ("params.opt NOT LIKE 's%'", where(lambda i: i % 2 == 0 or i < 10)),
    ("params.opt not ilike 'S%'", where(lambda i: i % 2 == 0)),
    ("params.depth IS NULL", {13}),
    ("tags.team ILIKE 'ml%'", where(lambda i: i % 4 != 3)),
    ("tags.team LIKE 'M%'", where(lambda i: i % 4 in (0, 2))),
    ("tags.team IN ('ML', 'ml')", where(lambda i: i % 4 in (0, 1))),
    ("tags.team NOT IN ('ML')", where(lambda i: i % 4 in (1, 2))),
    ("tags.team != 'ml'", where(lambda i: i % 4 in (0, 2))),
    ("tags.team IS NULL", where(lambda i: i % 4 == 3)),
    ("tag.mlflow.note = 'hello'", {0, 1, 2}),
    ("params.p = 'it''s 100%'", {6}),
    ("params.p = 'it\\'s 100%'", {6}),
    ('params.p = "it\'s 100%"', {6}),
    ("params.p LIKE '%100\\%'", {6}),
    ("params.p LIKE '%100%'", {6, 8}),
    ("params.p LIKE 'it\\_s'", {9}),
    ("params.p LIKE 'it_s%'", {6, 9}),
    # GLOB's own wildcards stay literal on SQLite.
    ("params.p LIKE 'a*b%'", {10}),
    ("params.p LIKE '%[c]'", {10}),
    ("params.p LIKE '%?%'", {10}),
    ("status = 'RUNNING' AND user = 'bob'", {1, 7, 13, 19, 25}),
    ("attributes.start_time >= 1100 AND start_time < 1120", {20, 21, 22, 23}),
    # Mixed ints and floats keep their values on PostgreSQL (no cast to the first one's type).
    ("start_time > 1009.5 AND start_time < 1010.5", {2, 3}),
    ("trial_number IN (1, 2.5)", {11}),
    ("metrics.loss IN (0, 0.1)", {0, 10, 20, 1, 11, 21}),
    ("end_time IS NULL", where(lambda i: i % 3 == 1)),
    ("parent_run_id = 'r00'", {1, 2, 3, 4}),
    ("parent_run_id IS NOT NULL", {1, 2, 3, 4}),
    ("params.depth = '1' OR params.depth = '2' AND user = 'ann'", {1, 6, 11, 16, 21, 26, 2, 12, 22}),
    ("(params.depth = '1' OR params.depth = '2') AND user = 'ann'", {6, 16, 26, 2, 12, 22}),
    ("run_name ILIKE 'alpha%'", {3, 4, 5}),
    ("run_name LIKE 'alpha%'", {4}),
    ("attributes.run_name = 'Alpha'", {3}),
    ("experiment_id = 2 AND lifecycle_stage = 'active'", set(range(20, 29))),
    ("trial_number IN (0, 2)", {10, 12}),
    ("trial_study IS NOT NULL AND trial_id > 12", {13, 14}),
    ("run_id IN ('r01', 'r02') OR id = 'r29'", {1, 2, 29}),
    ("run_group = '' AND experiment_id != 1", set(range(20, 30))),
]


def test_run_filters(engine, subtests):
    for text, expected in RUN_FILTERS:
        with subtests.test(filter=text):
            assert set(search_runs(engine, text)) == ids(expected)


FIRST_EIGHT = "run_id IN ('r00', 'r01', 'r02', 'r03', 'r04', 'r05', 'r06', 'r07')"

RUN_ORDERS = [
    # Numbers, then NaN (run 7), then runs without the metric (13), in both directions.
    ("experiment_id = 1", ["metrics.loss DESC"],
     [9, 19, 8, 18, 17, 6, 16, 5, 15, 4, 14, 3, 2, 12, 1, 11, 0, 10, 7, 13]),
    ("experiment_id = 1", ["metrics.loss"],
     [0, 10, 1, 11, 2, 12, 3, 4, 14, 5, 15, 6, 16, 17, 8, 18, 9, 19, 7, 13]),
    ("run_id IN ('r19', 'r20', 'r21', 'r22', 'r23')", ["metrics.score DESC"], [21, 22, 20, 19, 23]),
    ("run_id IN ('r19', 'r20', 'r21', 'r22', 'r23')", ["metrics.score ASC"], [20, 22, 21, 19, 23]),
    # By code point: "ML" < "Ml-ops" < "ml"; runs without the tag last.
    (FIRST_EIGHT, ["tags.team"], [0, 4, 2, 6, 1, 5, 3, 7]),
    (FIRST_EIGHT, ["tags.team DESC"], [1, 5, 2, 6, 0, 4, 3, 7]),
    ("run_id IN ('r00', 'r03', 'r04', 'r05')", ["run_name"], [5, 3, 4, 0]),
    ("run_id IN ('r00', 'r03', 'r04', 'r05')", ["attributes.run_name DESC"], [0, 4, 3, 5]),
    # The default: start_time DESC, then the run id.
    ("experiment_id = 2", [], [28, 29, 26, 27, 24, 25, 22, 23, 20, 21]),
    ("start_time = 1000", ["start_time DESC"], [0, 1]),
    ("start_time <= 1020", ["end_time DESC"], [5, 2, 3, 0, 1, 4]),
    ("start_time <= 1020", ["end_time"], [0, 2, 3, 5, 1, 4]),
    ("start_time >= 1040 AND start_time < 1080", ["trial_number DESC"], [14, 13, 12, 11, 10, 8, 9, 15]),
    ("experiment_id = 1 AND start_time < 1050", ["params.opt DESC", "metrics.loss ASC"],
     [0, 2, 4, 6, 8, 1, 3, 5, 9, 7]),
    ("params.depth IN ('1', '2') OR params.depth IS NULL", ["params.depth DESC", "start_time DESC"],
     [27, 22, 17, 12, 7, 2, 26, 21, 16, 11, 6, 1, 13]),
]


def test_run_orderings(engine, subtests):
    for text, order_by, expected in RUN_ORDERS:
        with subtests.test(filter=text, order_by=order_by):
            assert search_runs(engine, text, order_by) == [rid(i) for i in expected]


INJECTIONS = [
    "params.p = 'x'' OR 1=1 --'",
    "params.\"p' OR 1=1 --\" = 'x'",
    "tags.team = '''; DROP TABLE runs; --'",
    "run_name LIKE '%''; DELETE FROM params; --'",
]


def test_filter_text_never_reaches_sql(engine, subtests):
    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {table.name: conn.scalar(sa.select(sa.func.count()).select_from(table))
                    for table in (t.runs, t.params, t.tags, t.latest_metrics)}

    before = counts()
    for text in INJECTIONS:
        with subtests.test(filter=text):
            assert search_runs(engine, text) == []
            condition = run_condition(parse_filter(text, RUNS), engine.dialect.name)
            assert "1=1" not in str(condition.compile(dialect=engine.dialect)).replace(" ", "")
    assert counts() == before


def test_the_largest_allowed_search_runs(engine):
    deepest = "(" * MAX_NESTING + "params.depth = '0'" + ")" * MAX_NESTING
    others = [f"metrics.`m {i}` > {i}" for i in range(MAX_COMPARISONS - 1)]
    text = " OR ".join([deepest, *others])
    order_by = [f"metrics.m{i} DESC" for i in range(MAX_ORDER_KEYS - 1)] + ["params.depth"]
    assert search_runs(engine, text, order_by) == [rid(i) for i in (0, 5, 10, 15, 20, 25)]


def _search(engine, table, schema, condition, ordering, text, order_by) -> list:
    dialect = engine.dialect.name
    key = [table.c.id] if "id" in table.c else [table.c.model_id, table.c.version]
    query = (sa.select(*key).where(condition(parse_filter(text, schema), dialect))
             .order_by(*ordering(parse_order_by(order_by, schema), dialect)))
    with engine.connect() as conn:
        return [row[0] if len(row) == 1 else tuple(row) for row in conn.execute(query)]


EXPERIMENT_CASES = [
    ("name LIKE 'wine%'", [], [4, 1]),
    ("name ILIKE 'wine%'", ["name"], [2, 1, 4]),
    ("name LIKE 'wine\\_%'", [], [4]),
    ("tags.team = 'ml'", [], [1]),
    ("tags.team ILIKE 'ml' AND tags.owner IS NULL", [], [2]),
    ("tags.team IS NULL", [], [3]),
    ("tags.note LIKE '%50\\%'", [], [4]),
    ("id IN (1, 3)", ["experiment_id DESC"], [3, 1]),
    ("creation_time >= 200 AND last_update_time < 400", ["id"], [2, 4]),
    # The default: creation_time DESC, then id.
    ("", [], [3, 4, 2, 1]),
    ("", ["name"], [2, 3, 1, 4]),
    ("", ["tags.team DESC"], [4, 1, 2, 3]),
    ("", ["last_update_time"], [4, 2, 3, 1]),
]


def test_experiment_searches(engine, subtests):
    for text, order_by, expected in EXPERIMENT_CASES:
        with subtests.test(filter=text, order_by=order_by):
            assert _search(engine, t.experiments, EXPERIMENTS, experiment_condition, experiment_ordering,
                           text, order_by) == expected


REGISTERED_MODEL_CASES = [
    ("name = 'wine'", [], [1]),
    ("name ILIKE 'wine%'", [], [2, 1]),
    ("name LIKE 'wine%'", [], [1]),
    ("tags.task LIKE '%ion'", ["creation_time DESC"], [2, 1]),
    ("tags.task IS NULL OR creation_time > 25", [], [3]),
    # The default: by name, by code point.
    ("", [], [2, 3, 1]),
    ("", ["last_update_time DESC"], [1, 2, 3]),
    ("", ["tags.task DESC"], [2, 1, 3]),
]


def test_registered_model_searches(engine, subtests):
    for text, order_by, expected in REGISTERED_MODEL_CASES:
        with subtests.test(filter=text, order_by=order_by):
            assert _search(engine, t.registered_models, REGISTERED_MODELS, registered_model_condition,
                           registered_model_ordering, text, order_by) == expected


MODEL_VERSION_CASES = [
    ("name = 'wine'", [], "cba"),
    ("name = 'wine' AND version >= 2", [], "cb"),
    ("run_id IN ('r01')", [], "db"),
    ("run_id IS NULL", [], "c"),
    ("source_path LIKE 's3://%'", [], "dba"),
    ("current_stage = 'Production'", [], "db"),
    ("stage != 'Production'", [], "eca"),
    ("tags.validated = 'true'", [], "b"),
    ("tags.validated IS NOT NULL", [], "db"),
    ("name ILIKE 'WINE%' AND stage = 'Production'", [], "db"),
    # The default: model name, then version DESC.
    ("", [], "decba"),
    ("", ["creation_time DESC"], "edcba"),
    ("", ["tags.validated"], "dbace"),
]


def test_model_version_searches(engine, subtests):
    for text, order_by, expected in MODEL_VERSION_CASES:
        with subtests.test(filter=text, order_by=order_by):
            assert _search(engine, t.model_versions, MODEL_VERSIONS, model_version_condition, model_version_ordering,
                           text, order_by) == [VERSIONS[name][:2] for name in expected]
