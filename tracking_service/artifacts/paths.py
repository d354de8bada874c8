"""Validation of client-given artifact paths.

Artifact paths come from remote clients and end up joined onto directories of the server's
disk, so anything that could name a file outside the run's folder is refused outright rather
than "repaired": a path that needs repairing is either a mistake or an attack.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from tuning_common.errors import InvalidArgument

MAX_PATH_CHARS = 1024
# The common file-system limit on one name (ext4, APFS, NTFS).
MAX_SEGMENT_CHARS = 255
# Enough for any honest double encoding; more rounds than this is a path built to confuse a decoder.
_MAX_DECODE_ROUNDS = 4

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_DRIVE = re.compile(r"[A-Za-z]:")


def clean_relative_path(path: str, field: str, *, allow_empty: bool = False) -> str:
    """``path`` as a relative "/"-separated path without its trailing "/"; InvalidArgument on ``field`` otherwise."""
    if not path:
        if allow_empty:
            return ""
        raise InvalidArgument(field, "must not be empty")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidArgument(field, f"must be at most {MAX_PATH_CHARS} characters")
    if "\\" in path:
        raise InvalidArgument(field, "must separate folders with '/', not '\\'")
    if path.startswith("/"):
        raise InvalidArgument(field, "must be relative, not start with '/'")
    if _DRIVE.match(path):
        raise InvalidArgument(field, "must be relative, not start with a Windows drive ('C:')")
    _refuse_hidden_characters(_fully_decoded(path, field), field)
    cleaned = path.removesuffix("/")
    for segment in cleaned.split("/"):
        _check_segment(segment, field)
    return cleaned


def is_within(root: Path, candidate: Path) -> bool:
    """Whether ``candidate``, symlinks resolved, is ``root`` or lies under it."""
    return candidate.resolve().is_relative_to(root.resolve())


def _fully_decoded(path: str, field: str) -> str:
    """``path`` percent-decoded until stable, refusing escapes of '.', '/' and '\\' at every round.

    Some layer between the client and the disk (a proxy, a URI parser, a future object store) may decode
    once more than we do, so '%252e' must be refused as surely as '%2e'.
    """
    text = path
    for _ in range(_MAX_DECODE_ROUNDS):
        for escape in _ESCAPE.finditer(text):
            if chr(int(escape[1], 16)) in "./\\":
                raise InvalidArgument(field, f"must not percent-encode '.', '/' or '\\' (found {escape[0]})")
        try:
            decoded = unquote(text, errors="strict")
        except UnicodeDecodeError:
            # Overlong UTF-8 ('%c0%ae') is how dots were smuggled past decoders that were not strict.
            raise InvalidArgument(field, "must not percent-encode invalid UTF-8") from None
        if decoded == text:
            return text
        text = decoded
    raise InvalidArgument(field, f"must not be percent-encoded more than {_MAX_DECODE_ROUNDS - 1} times over")


def _refuse_hidden_characters(text: str, field: str) -> None:
    """Refuse control characters and look-alikes that some normaliser downstream could turn into '.' or '/'."""
    for char in text:
        if unicodedata.category(char) == "Cc":
            raise InvalidArgument(field, f"must not contain control characters (U+{ord(char):04X})")
        if not char.isascii() and any(c in "./\\" for c in unicodedata.normalize("NFKC", char)):
            raise InvalidArgument(field, f"must not contain U+{ord(char):04X}, which normalises to '.', '/' or '\\'")


def _check_segment(segment: str, field: str) -> None:
    if not segment:
        raise InvalidArgument(field, "must not contain empty segments ('//')")
    if segment in (".", ".."):
        raise InvalidArgument(field, f"must not contain '{segment}' segments")
    if len(segment) > MAX_SEGMENT_CHARS:
        raise InvalidArgument(field, f"must not contain a name longer than {MAX_SEGMENT_CHARS} characters")
