"""The search language: tokens, the tree it parses to, its errors and limits; page tokens."""

from __future__ import annotations

import base64
import json

import pytest

from tuning_common.errors import InvalidArgument
from tuning_common.paging import decode_page_token, encode_page_token
from tuning_types.search import (
    EXPERIMENTS,
    MAX_COMPARISONS,
    MAX_FILTER_CHARS,
    MAX_NESTING,
    MAX_ORDER_KEYS,
    MODEL_VERSIONS,
    REGISTERED_MODELS,
    RUNS,
    And,
    Comparison,
    Op,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)


def metric(key, op, value):
    return Comparison("metrics", key, op, value)


def param(key, op, value):
    return Comparison("params", key, op, value)


def tag(key, op, value):
    return Comparison("tags", key, op, value)


def attr(key, op, value):
    return Comparison("attributes", key, op, value)


# --- valid filters -----------------------------------------------------------------------

VALID = [
    ("metrics.loss < 0.5", metric("loss", Op.LT, 0.5)),
    ("metric.loss <= -1", metric("loss", Op.LE, -1)),
    ("metrics.loss>=2", metric("loss", Op.GE, 2)),
    ("metrics.loss > -2.5E-3", metric("loss", Op.GT, -0.0025)),
    ("metrics.loss = 1e3", metric("loss", Op.EQ, 1000.0)),
    ("metrics.loss = .5", metric("loss", Op.EQ, 0.5)),
    ("metrics.loss != 7.", metric("loss", Op.NE, 7.0)),
    ("metrics.loss = 99999999999999999999", metric("loss", Op.EQ, 1e20)),
    ("metrics.val.f1 > 0.8", metric("val.f1", Op.GT, 0.8)),
    ("metrics.eval/loss < 1", metric("eval/loss", Op.LT, 1)),
    ("metrics.a:b-c_d < 1", metric("a:b-c_d", Op.LT, 1)),
    ("metrics.`val f1` > 0", metric("val f1", Op.GT, 0)),
    ('metrics."val f1" > 0', metric("val f1", Op.GT, 0)),
    ("metrics.`a``b` > 0", metric("a`b", Op.GT, 0)),
    ("params.max_depth = '6'", param("max_depth", Op.EQ, "6")),
    ('param.opt != "adam"', param("opt", Op.NE, "adam")),
    ("params.p = 'it''s'", param("p", Op.EQ, "it's")),
    ("params.p = 'it\\'s'", param("p", Op.EQ, "it's")),
    ('params.p = "say ""hi"""', param("p", Op.EQ, 'say "hi"')),
    ("params.p = 'C:\\\\dir\\file'", param("p", Op.EQ, "C:\\dir\\file")),
    ("params.p = ''", param("p", Op.EQ, "")),
    ("params.p = 'a\\\\'", param("p", Op.EQ, "a\\")),
    ("params.p LIKE '100\\%'", param("p", Op.LIKE, "100\\%")),
    ("tags.team <> 'ml'", tag("team", Op.NE, "ml")),
    ("tag.mlflow.runName = 'x'", tag("mlflow.runName", Op.EQ, "x")),
    ("tags.team ILIKE '%ML%'", tag("team", Op.ILIKE, "%ML%")),
    ("tags.team not like 'a%'", tag("team", Op.NOT_LIKE, "a%")),
    ("tags.team Not ILike 'a%'", tag("team", Op.NOT_ILIKE, "a%")),
    ("tags.team IS NULL", tag("team", Op.IS_NULL, None)),
    ("tags.team is not null", tag("team", Op.IS_NOT_NULL, None)),
    ("metrics.loss IS NULL", metric("loss", Op.IS_NULL, None)),
    ("attributes.status = 'RUNNING'", attr("status", Op.EQ, "RUNNING")),
    ("attribute.status = 'RUNNING'", attr("status", Op.EQ, "RUNNING")),
    ("attr.user = 'ann'", attr("user", Op.EQ, "ann")),
    ("status = 'RUNNING'", attr("status", Op.EQ, "RUNNING")),
    ("id = 'abc'", attr("run_id", Op.EQ, "abc")),
    ("attributes.run_id IN ('a', 'b')", attr("run_id", Op.IN, ("a", "b"))),
    ("`start_time` > 5", attr("start_time", Op.GT, 5)),
    ("attributes.`end_time` IS NULL", attr("end_time", Op.IS_NULL, None)),
    ("trial_number IN (1, 2.5, -3)", attr("trial_number", Op.IN, (1, 2.5, -3))),
    ("experiment_id not in (4)", attr("experiment_id", Op.NOT_IN, (4,))),
    ("params.p NOT IN ('a', \"b\")", param("p", Op.NOT_IN, ("a", "b"))),
    ("parent_run_id IS NOT NULL", attr("parent_run_id", Op.IS_NOT_NULL, None)),
    ("run_name = 'x' AND run_group = '' AND lifecycle_stage = 'active' AND trial_study = 's' AND trial_id = 1",
     And((attr("run_name", Op.EQ, "x"), attr("run_group", Op.EQ, ""), attr("lifecycle_stage", Op.EQ, "active"),
          attr("trial_study", Op.EQ, "s"), attr("trial_id", Op.EQ, 1)))),
    ("  \n metrics.loss < 1 \t", metric("loss", Op.LT, 1)),
    ("((metrics.loss < 1))", metric("loss", Op.LT, 1)),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[text for text, _ in VALID])
def test_valid_filters(text, expected):
    assert parse_filter(text, RUNS) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_filter_matches_everything(text):
    assert parse_filter(text, RUNS) is None


def test_and_binds_tighter_than_or_and_keywords_ignore_case():
    a, b, c = param("a", Op.EQ, "1"), param("b", Op.EQ, "2"), param("c", Op.EQ, "3")
    assert parse_filter("params.a = '1' OR params.b = '2' AND params.c = '3'", RUNS) == Or((a, And((b, c))))
    assert parse_filter("params.a = '1' and params.b = '2' or params.c = '3'", RUNS) == Or((And((a, b)), c))
    assert parse_filter("(params.a = '1' oR params.b = '2') AnD params.c = '3'", RUNS) == And((Or((a, b)), c))
    assert parse_filter("params.a = '1' AND (params.b = '2' OR params.c = '3')", RUNS) == And((a, Or((b, c))))


def test_a_key_may_be_a_keyword_or_an_attribute_name():
    assert parse_filter("tags.and = 'x' and params.status = 'y'", RUNS) == And(
        (tag("and", Op.EQ, "x"), param("status", Op.EQ, "y")))


def test_other_entities_have_their_own_schemas():
    assert parse_filter("name LIKE 'wine-%' AND tags.team = 'ml'", EXPERIMENTS) == And(
        (attr("name", Op.LIKE, "wine-%"), tag("team", Op.EQ, "ml")))
    assert parse_filter("id = 3 OR create_time > 5", EXPERIMENTS) == Or(
        (attr("experiment_id", Op.EQ, 3), attr("creation_time", Op.GT, 5)))
    assert parse_filter("last_update_time < 1", REGISTERED_MODELS) == attr("last_update_time", Op.LT, 1)
    assert parse_filter("name = 'wine' AND stage = 'Production' AND version >= 2", MODEL_VERSIONS) == And(
        (attr("name", Op.EQ, "wine"), attr("current_stage", Op.EQ, "Production"), attr("version", Op.GE, 2)))
    assert parse_filter("source_path LIKE 's3://%' AND run_id IN ('a')", MODEL_VERSIONS) == And(
        (attr("source_path", Op.LIKE, "s3://%"), attr("run_id", Op.IN, ("a",))))


# --- invalid filters ---------------------------------------------------------------------

INVALID = [
    ("metrics.loss >", "at position 14 ('>'): expected a value after this, but the text ends"),
    ("metrics.loss > > 1", "at position 16 ('>'): expected a value (a quoted string or a number)"),
    ("params.p == 'a'", "at position 11 ('='): expected a value"),
    ("status = RUNNING", "at position 10 ('RUNNING'): expected a value (a quoted string or a number); quote strings"),
    ("params.p = NULL", "at position 12 ('NULL'): expected a value (a quoted string or a number); test for a missing"),
    ("params.p < 'a'", "at position 10 ('<'): params.p is a string"),
    ("run_name >= 'a'", "at position 10 ('>='): run_name is a string"),
    ("metrics.loss LIKE '1%'", "at position 14 ('LIKE'): metrics.loss is a number"),
    ("start_time NOT ILIKE '1%'", "at position 12 ('NOT'): start_time is a number"),
    ("metrics.loss = '0.5'", "at position 16 (\"'0.5'\"): metrics.loss is a number; compare it with a number"),
    ("end_time > 'yesterday'", "at position 12 (\"'yesterday'\"): end_time is a number"),
    ("params.p = 5", "at position 12 ('5'): params.p is a string; quote the value"),
    ("metrics.loss IN (1, 'a')", "at position 21 (\"'a'\"): metrics.loss is a number"),
    ("foo = 'x'", "at position 1 ('foo'): runs have no attribute 'foo'"),
    ("attributes.bogus = 1", "at position 1 ('attributes.bogus'): runs have no attribute 'bogus'"),
    ("metricz.loss > 1", "at position 1 ('metricz.loss'): unknown namespace 'metricz'"),
    ("run.status = 'x'", "at position 1 ('run.status'): unknown namespace 'run'"),
    ("metrics.loss IN ()", "at position 18 (')'): an IN list needs at least one value"),
    ("params.p IN 'a'", "at position 13 (\"'a'\"): expected '(' starting the list of values"),
    ("params.p IN ('a' 'b')", "at position 18 (\"'b'\"): expected ',' or ')' in the list of values"),
    ("params.p IN ('a',", "at position 17 (','): expected a value after this, but the text ends"),
    ("(metrics.loss > 1", "at position 1 ('('): this '(' is never closed"),
    ("((metrics.loss > 1) AND (params.p = 'a')", "at position 1 ('('): this '(' is never closed"),
    ("(metrics.loss > 1 params.p = 'a')",
     "at position 19 ('params.p'): expected AND, OR or ')' to close the '(' at position 1"),
    ("metrics.loss > 1 params.p = 'a'", "at position 18 ('params.p'): unexpected text; expected AND or OR"),
    ("metrics.loss > 1)", "at position 17 (')'): unexpected text; expected AND or OR"),
    ("metrics. > 1", "at position 1 ('metrics.'): empty key"),
    ("metrics.`` > 1", "at position 1 ('metrics.``'): empty key"),
    ("params.p = 'abc", "at position 12 (\"'\"): unterminated quoted text"),
    ('tags."team = 1', "at position 6 ('\"'): unterminated quoted text"),
    ("params.p = 'a\\'", "at position 12 (\"'\"): unterminated quoted text; close it with '"),
    ("metrics.loss > 1.5.2", "at position 16 ('1.5.2'): malformed number"),
    ("metrics.loss > 3x", "at position 16 ('3x'): malformed number"),
    ("metrics.loss > 1 AND", "at position 18 ('AND'): expected a comparison such as metrics.loss < 0.5, or '(' after"),
    ("metrics.loss > 1 OR OR metrics.x < 2", "at position 21 ('OR'): expected a comparison"),
    ("NOT metrics.loss > 1", "at position 1 ('NOT'): expected a comparison"),
    (")", "at position 1 (')'): expected a comparison"),
    ("'a' = params.p", "at position 1 (\"'a'\"): expected a comparison"),
    ("params.p NOT = 'a'", "at position 14 ('='): expected LIKE, ILIKE or IN after NOT"),
    ("params.p IS 'a'", "at position 13 (\"'a'\"): expected NULL"),
    ("params.p IS NOT", "at position 13 ('NOT'): expected NULL after this, but the text ends"),
    ("params.p", "at position 1 ('params.p'): expected a comparison operator"),
    ("params.p 'a'", "at position 10 (\"'a'\"): expected a comparison operator"),
    ("params.p = 'a' ; DROP TABLE runs", "at position 16 (';'): unexpected character"),
    ("metrics.loss @ 1", "at position 14 ('@'): unexpected character"),
    ("params.p LIKE 'abc\\\\'", "at position 15 (\"'abc\\\\\\\\'\"): a pattern cannot end with a lone '\\'"),
    ("params.p LIKE 5", "at position 15 ('5'): expected a quoted pattern"),
    ("params.p = 'a' AND tags.t = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' x",
     "at position 77 ('x'): unexpected text"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[text for text, _ in INVALID])
def test_invalid_filters_point_at_the_offending_token(text, message):
    with pytest.raises(InvalidArgument) as error:
        parse_filter(text, RUNS, field="filter")
    assert error.value.field == "filter"
    assert error.value.description.startswith(message), error.value.description


def test_long_tokens_are_shortened_in_messages():
    with pytest.raises(InvalidArgument) as error:
        parse_filter("params.p = 'a' " + "x" * 100, RUNS)
    assert error.value.description.startswith("at position 16 ('" + "x" * 37 + "...'): unexpected text")


def test_namespaces_depend_on_the_entity():
    with pytest.raises(InvalidArgument) as error:
        parse_filter("metrics.loss > 1", EXPERIMENTS, field="filter")
    assert error.value.description.startswith(
        "at position 1 ('metrics.loss'): unknown namespace 'metrics'; experiments take tags., attributes.")
    with pytest.raises(InvalidArgument) as error:
        parse_filter("name = 'a' AND start_time > 1", MODEL_VERSIONS, field="filter")
    assert error.value.description.startswith("at position 16 ('start_time'): model versions have no attribute")


def test_errors_name_the_callers_field():
    with pytest.raises(InvalidArgument) as error:
        parse_filter("x", RUNS, field="filter_string")
    assert error.value.field == "filter_string"
    assert str(error.value).startswith("filter_string: at position 1 ('x'):")


# --- limits ------------------------------------------------------------------------------


def test_filter_length_is_limited():
    padded = "metrics.loss > 1" + " " * (MAX_FILTER_CHARS - 16)
    assert parse_filter(padded, RUNS) == metric("loss", Op.GT, 1)
    with pytest.raises(InvalidArgument) as error:
        parse_filter(padded + " ", RUNS)
    assert error.value.description == f"at most {MAX_FILTER_CHARS} characters, got {MAX_FILTER_CHARS + 1}"


def test_comparison_count_is_limited():
    most = " OR ".join(f"metrics.m{i} > {i}" for i in range(MAX_COMPARISONS))
    assert len(parse_filter(most, RUNS).items) == MAX_COMPARISONS
    with pytest.raises(InvalidArgument) as error:
        parse_filter(most + " OR metrics.extra > 0", RUNS)
    assert error.value.description == (
        f"at position {len(most) + 5} ('metrics.extra'): more than {MAX_COMPARISONS} comparisons")


def test_nesting_is_limited_before_recursion_runs_out():
    deepest = "(" * MAX_NESTING + "metrics.loss > 1" + ")" * MAX_NESTING
    assert parse_filter(deepest, RUNS) == metric("loss", Op.GT, 1)
    with pytest.raises(InvalidArgument) as error:
        parse_filter("(" + deepest + ")", RUNS)
    assert error.value.description.startswith(f"at position {MAX_NESTING + 1} ('('): parentheses nest deeper")
    with pytest.raises(InvalidArgument):
        parse_filter("(" * (MAX_FILTER_CHARS // 2) + ")" * (MAX_FILTER_CHARS // 2), RUNS)


# --- order_by ----------------------------------------------------------------------------


def test_order_by_keys():
    items = ["metrics.loss DESC", "params.lr", "start_time asc", "tags.`a b` Desc", "attr.id", "metric.val.f1"]
    assert parse_order_by(items, RUNS) == [
        OrderKey("metrics", "loss", descending=True),
        OrderKey("params", "lr"),
        OrderKey("attributes", "start_time"),
        OrderKey("tags", "a b", descending=True),
        OrderKey("attributes", "run_id"),
        OrderKey("metrics", "val.f1"),
    ]
    assert parse_order_by([], RUNS) == []
    assert parse_order_by(["create_time DESC"], EXPERIMENTS) == [OrderKey("attributes", "creation_time", True)]
    assert parse_order_by(["name", "version DESC"], MODEL_VERSIONS) == [
        OrderKey("attributes", "name"), OrderKey("attributes", "version", True)]


ORDER_INVALID = [
    (["metrics.loss DESCENDING"], "order_by[0]", "at position 14 ('DESCENDING'): unexpected text; expected only ASC"),
    (["run_name", "metrics.loss DESC ASC"], "order_by[1]", "at position 19 ('ASC'): unexpected text"),
    (["start_time", ""], "order_by[1]", "at position 1 (end of input): expected a key to order by"),
    (["bogus"], "order_by[0]", "at position 1 ('bogus'): runs have no attribute 'bogus'"),
    (["DESC"], "order_by[0]", "at position 1 ('DESC'): expected a key to order by"),
    (["metrics.loss, params.lr"], "order_by[0]", "at position 13 (','): unexpected text"),
    (["params.lr > 1"], "order_by[0]", "at position 11 ('>'): unexpected text"),
]


@pytest.mark.parametrize(("items", "field", "message"), ORDER_INVALID, ids=[str(i) for i, _, _ in ORDER_INVALID])
def test_invalid_order_by_names_the_item(items, field, message):
    with pytest.raises(InvalidArgument) as error:
        parse_order_by(items, RUNS)
    assert error.value.field == field
    assert error.value.description.startswith(message), error.value.description


def test_order_by_is_limited():
    with pytest.raises(InvalidArgument) as error:
        parse_order_by(["start_time"] * (MAX_ORDER_KEYS + 1), RUNS)
    assert error.value.field == "order_by"
    with pytest.raises(InvalidArgument) as error:
        parse_order_by(["start_time" + " " * MAX_FILTER_CHARS], RUNS)
    assert error.value.field == "order_by[0]"


# --- page tokens -------------------------------------------------------------------------


def test_page_tokens_round_trip_and_are_url_safe():
    token = encode_page_token(12345, "query-a")
    assert decode_page_token(token, "query-a") == 12345
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert decode_page_token("", "query-a") == 0


def test_a_page_token_only_resumes_its_own_query():
    with pytest.raises(InvalidArgument) as error:
        decode_page_token(encode_page_token(10, "query-a"), "query-b", field="next")
    assert error.value.field == "next" and "different query" in error.value.description


def _raw_token(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize("token", [
    "not a token!",
    "%%%%",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    _raw_token([1, 2]),
    _raw_token({"offset": 1}),
    _raw_token({"offset": -1, "query": "x"}),
    _raw_token({"offset": True, "query": "x"}),
    _raw_token({"offset": 1.5, "query": "x"}),
    "A" * 400,
])
def test_malformed_page_tokens_are_invalid(token):
    with pytest.raises(InvalidArgument) as error:
        decode_page_token(token, "query-a")
    assert error.value.field == "page_token" and "malformed" in error.value.description


def test_negative_offsets_are_never_encoded():
    with pytest.raises(ValueError):
        encode_page_token(-1, "query-a")
