"""Artifact path validation: every way of naming a file outside the run's folder is refused."""

from __future__ import annotations

import pytest

from tracking_service.artifacts.paths import clean_relative_path, is_within
from tuning_common.errors import InvalidArgument

HOSTILE = [
    "",
    "/etc/passwd",
    "/",
    "..",
    ".",
    "../secret",
    "a/../../secret",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/b//",
    "//server/share",
    "\\\\server\\share",
    "a\\b",
    "..\\secret",
    "C:",
    "C:/Windows",
    "c:secret",
    "a\x00b",
    "a\nb",
    "a\tb",
    "a\x1b[31mb",
    "a\x7fb",
    "a\u0085b",
    "%2e%2e",
    "%2E%2e/secret",
    "..%2f",
    "..%2Fsecret",
    "a%2fb",
    "%5c",
    "a%5c..",
    "%252e%252e",
    "%252E%252e%252fsecret",
    "%25252e%25252e/secret",
    "%2525252e",
    "a%00b",
    "a%0ab",
    "%c2%85",
    "%c0%ae%c0%ae",
    "%ef%bc%8e%ef%bc%8e",
    "．．",
    "．．/secret",
    "a／b",
    "a＼b",
    "‥",
    "a" * 1025,
    "a/" + "b" * 256,
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused_naming_the_field(path):
    with pytest.raises(InvalidArgument) as error:
        clean_relative_path(path, "header.path")
    assert error.value.field == "header.path"
    assert "header.path" in str(error.value)


@pytest.mark.parametrize(
    "path",
    [
        "model.pkl",
        "model.v1.json",
        "a/b/c/d.txt",
        "plots/loss curve.png",
        "modèle/données.csv",
        "模型/权重.bin",
        "...",
        ".hidden",
        "a..b",
        "100%.txt",
        "50%25",
        "x" * 255,
        "/".join(["d"] * 512)[:1023] + "e",
    ],
)
def test_ordinary_paths_are_kept_as_they_are(path):
    assert clean_relative_path(path, "path") == path


def test_a_trailing_slash_is_dropped():
    assert clean_relative_path("a/b/", "path") == "a/b"


def test_empty_is_the_root_only_when_allowed():
    assert clean_relative_path("", "path", allow_empty=True) == ""
    with pytest.raises(InvalidArgument, match="path: must not be empty"):
        clean_relative_path("", "path")


def test_messages_say_what_is_wrong():
    cases = {
        "../x": "'..' segments",
        "/x": "relative",
        "a//b": "empty segments",
        "a\\b": "'/'",
        "%252e": "percent-encode",
        "．": "U+FF0E",
        "a\x00": "control characters",
        "a" * 1025: "1024",
    }
    for path, words in cases.items():
        with pytest.raises(InvalidArgument) as error:
            clean_relative_path(path, "path")
        assert words in error.value.description, path


def test_is_within_follows_links(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    assert is_within(root, root)
    assert is_within(root, root / "a" / "missing")
    assert not is_within(root, root / "out")
    assert not is_within(root, root / "a" / ".." / "..")
