"""The settings each algorithm and pruner accepts are declared once (its ``Settings``
dataclass); the docs and the proto comments list them, and this keeps the lists true."""

from __future__ import annotations

import json
import re

import pytest

from suggestion_service.algorithms import ALGORITHMS
from suggestion_service.algorithms.base import SETTING_TYPES
from suggestion_service.algorithms.pruners import PRUNERS
from tests.conftest import ROOT

COMPONENTS = [("Algorithm", name, cls) for name, cls in ALGORITHMS.items()] + \
             [("Pruner", name, cls) for name, cls in PRUNERS.items()]


def _reference(cls) -> str:
    """How the docs and the protos write a component's settings: `name (type, default), ...`."""
    return ", ".join(f"{key} ({SETTING_TYPES[t]}, {json.dumps(default)})"
                     for key, (t, default) in cls.settings_schema().items()) or "none"


def _message_comment(message: str) -> str:
    """The comment above ``message <message> {`` in study.proto, on one line."""
    text = (ROOT / "protos/tuning/suggestion/v1/study.proto").read_text()
    lines = text[:text.index(f"\nmessage {message} {{")].splitlines()
    comment = []
    while lines and lines[-1].startswith("//"):
        comment.insert(0, lines.pop()[2:].strip())
    return " ".join(comment)


@pytest.mark.parametrize("message, name, cls", COMPONENTS, ids=[c[1] for c in COMPONENTS])
def test_the_proto_comment_lists_each_setting_with_its_type_and_default(message, name, cls):
    listed = re.findall(r"- (\w+): (.*?)(?= - \w+: |$)", _message_comment(message).split("default)`:", 1)[1])
    assert dict(listed).get(name) == _reference(cls)
    assert {n for n, _ in listed} == set(ALGORITHMS if message == "Algorithm" else PRUNERS)


@pytest.mark.parametrize("message, name, cls", COMPONENTS, ids=[c[1] for c in COMPONENTS])
def test_the_docs_list_each_setting_with_its_type_and_default(message, name, cls):
    table = (ROOT / "docs/ALGORITHMS.md").read_text().split("| name | settings (type, default) |", 1)[1]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", table.split("\n\n", 1)[0], re.M))
    assert rows.get(name) == _reference(cls)
