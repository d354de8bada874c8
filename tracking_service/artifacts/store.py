"""The artifact store interface: where runs keep their files.

The service talks only to this interface so that an object store can sit behind it later; the
local folder (:mod:`.local`) is the default. Locations are URIs (``file:///root/3/<run_id>/artifacts``)
because they are stored in the database and shown to users; paths inside a run's root are the
"/"-separated relative paths of :func:`.paths.clean_relative_path`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tuning_common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

# Chunk size of downloads: small enough to keep memory flat, large enough to keep per-message overhead low.
CHUNK_SIZE = 1 << 20

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def check_upload_header(size: int, sha256: str, max_bytes: int) -> None:
    """An upload's declared size and checksum, checked before any byte is read (or any run looked up)."""
    if size < 0:
        raise InvalidArgument("header.size", "must not be negative")
    if size > max_bytes:
        raise ResourceExhausted(f"the artifact's {size} bytes are over the limit of {max_bytes}")
    if not _SHA256_HEX.fullmatch(sha256):
        raise InvalidArgument("header.sha256", "must be 64 lowercase hex characters")


@dataclass(frozen=True)
class FileInfo:
    """A file or folder, ``path`` relative to the run's artifact root."""

    path: str
    is_dir: bool
    # Bytes; 0 for folders.
    size: int
    # Lowercase hex; empty for folders and in listings (it would mean reading every file).
    sha256: str = ""


class ArtifactStore(abc.ABC):
    """Every method refuses (InvalidArgument) a path or URI that could reach outside the store."""

    @abc.abstractmethod
    def run_root(self, experiment_id: int, run_id: str, experiment_location: str | None) -> str:
        """The artifact root URI of a new run: ``<experiment location>/<run_id>/artifacts``.

        The experiment location is its own ``artifact_location`` when it has one, else the default.
        """

    @abc.abstractmethod
    def default_experiment_location(self, experiment_id: int) -> str:
        """The location of an experiment created without an ``artifact_location``."""

    @abc.abstractmethod
    def check_location(self, uri: str, field: str) -> str:
        """``uri`` (an artifact location or a model-version source) normalised; InvalidArgument on ``field``
        unless it names a folder inside the store."""

    @abc.abstractmethod
    def upload(
        self, root_uri: str, path: str, chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int
    ) -> FileInfo:
        """Store ``chunks`` at ``path`` under ``root_uri``, replacing any file there, all or nothing.

        InvalidArgument on ``header.size`` or ``header.sha256`` when the content does not match them;
        ResourceExhausted as soon as more than ``max_bytes`` are declared or received.
        """

    @abc.abstractmethod
    def open(self, root_uri: str, path: str) -> tuple[FileInfo, Iterator[bytes]]:
        """The file at ``path`` (with its sha256) and its content in chunks of :data:`CHUNK_SIZE`.

        NotFound when there is nothing there; FailedPrecondition when it is a folder.
        """

    @abc.abstractmethod
    def list(self, root_uri: str, path: str = "") -> list[FileInfo]:
        """One level of the folder at ``path``: folders first, then files, each sorted by name.

        A missing run root is an empty list (runs that logged nothing have none); any other missing folder is
        NotFound.
        """

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether a file or folder of the store is at ``uri`` (False for URIs outside the store)."""

    def download_url(self, root_uri: str, path: str, expires_s: int) -> tuple[FileInfo, str]:
        """The file at ``path`` and a URL that downloads it from the store itself for ``expires_s`` seconds.

        NotFound and FailedPrecondition as :meth:`open`; FailedPrecondition (DIRECT_URLS_UNSUPPORTED) for a
        store without URLs of its own.
        """
        raise FailedPrecondition("this artifact store (a folder of the tracking service) has no direct URLs: "
                                 "download through the service", reason="DIRECT_URLS_UNSUPPORTED")
