"""Where runs keep their files: the :class:`ArtifactStore` interface and its local-folder implementation."""

from __future__ import annotations

from pathlib import Path

from tracking_service.artifacts.local import LocalArtifactStore, local_path
from tracking_service.artifacts.paths import clean_relative_path, is_within
from tracking_service.artifacts.store import CHUNK_SIZE, ArtifactStore, FileInfo
from tuning_common.errors import InvalidArgument

__all__ = [
    "CHUNK_SIZE",
    "ArtifactStore",
    "FileInfo",
    "LocalArtifactStore",
    "clean_relative_path",
    "is_within",
    "make_store",
]


def make_store(url_or_path: str) -> ArtifactStore:
    """The store of the ``artifacts`` setting: a folder given as a plain path or a ``file://`` URI."""
    if not url_or_path:
        raise InvalidArgument("artifacts", "must not be empty")
    return LocalArtifactStore(Path(local_path(url_or_path, "artifacts")))
