"""Where runs keep their files: the :class:`ArtifactStore` interface, its local-folder and S3 implementations."""

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
    """The store of the ``artifacts`` setting: a folder given as a plain path or a ``file://`` URI, or an
    ``s3://bucket/prefix`` URL."""
    if not url_or_path:
        raise InvalidArgument("artifacts", "must not be empty")
    if url_or_path.startswith("s3:"):
        # Imported here: boto3 is the optional `s3` extra, and the local store must not need it.
        try:
            from tracking_service.artifacts.s3 import S3ArtifactStore
        except ImportError as error:
            raise InvalidArgument("artifacts", f"an s3:// store needs boto3 (pip install 'tuning-suite[s3]'): "
                                               f"{error}") from None
        return S3ArtifactStore(url_or_path)
    return LocalArtifactStore(Path(local_path(url_or_path, "artifacts")))
