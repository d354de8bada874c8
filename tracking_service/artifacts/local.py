"""The artifact store as a folder of the local (or a mounted) file system."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from tracking_service.artifacts.paths import clean_relative_path, is_within
from tracking_service.artifacts.store import CHUNK_SIZE, ArtifactStore, FileInfo, check_upload_header
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

# Explicit, so that the server's umask does not decide who can read the artifacts.
_UPLOADING = ".upload-"
_UPLOAD_IN_PROGRESS = re.compile(r"\.upload-[0-9a-f]{32}")
FILE_MODE = 0o644
DIR_MODE = 0o755


def local_path(uri: str, field: str) -> str:
    """The path named by a ``file:`` URI or a plain path, not normalised, so that traversal stays visible."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri
    if parts.scheme != "file":
        raise InvalidArgument(field, f"scheme {parts.scheme!r} is not supported; use a file:// URI or a plain path")
    if parts.netloc not in ("", "localhost"):
        raise InvalidArgument(field, f"must be a local file:// URI, not one on host {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise InvalidArgument(field, "must not have a query or fragment ('?', '#')")
    return unquote(parts.path)


class LocalArtifactStore(ArtifactStore):
    """Files under ``root``, by default at ``<experiment_id>/<run_id>/artifacts/<path>``.

    Nothing is read or written through a symbolic link: the folder is shared by every run, and a link
    (planted by anyone with access to the disk) would let a request reach other runs' files or the host's.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # Resolved once, so that links above the store (/tmp -> /private/tmp) do not put everything "outside" it.
        self.root = root.resolve()

    def run_root(self, experiment_id: int, run_id: str, experiment_location: str | None) -> str:
        base = self._location(experiment_location, "artifact_location") if experiment_location else str(experiment_id)
        run = clean_relative_path(run_id, "run_id")
        if "/" in run:
            raise InvalidArgument("run_id", "must be a single name, not a path")
        return self._uri(f"{base}/{run}/artifacts")

    def default_experiment_location(self, experiment_id: int) -> str:
        return self._uri(str(experiment_id))

    def check_location(self, uri: str, field: str) -> str:
        return self._uri(self._location(uri, field))

    def exists(self, uri: str) -> bool:
        try:
            relative = self._location(uri, "uri")
        except InvalidArgument:
            return False
        return (self.root / relative).exists()

    def upload(
        self, root_uri: str, path: str, chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int
    ) -> FileInfo:
        check_upload_header(size, sha256, max_bytes)
        relative, target = self._target(root_uri, path, "header.path")
        if target.is_dir():
            raise FailedPrecondition(f"cannot replace the folder {relative} with a file")
        # Staged in the deepest folder on the way that exists already, and the missing ones created only once the
        # content is complete and checked: an upload that fails leaves the store as it was, with no empty folders.
        # The folders created later lie under the staging one, so the rename stays on one file system (atomic).
        staging = self._existing_ancestor(target.parent)
        temporary = staging / f"{_UPLOADING}{uuid.uuid4().hex}"
        try:
            _write(temporary, chunks, size=size, sha256=sha256, max_bytes=max_bytes)
            self._make_folders(target.parent)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        # Persists the file's new name and the entries of the folders created for it.
        folder = target.parent
        _fsync_folder(folder)
        while folder != staging and folder != self.root:
            folder = folder.parent
            _fsync_folder(folder)
        return FileInfo(relative, False, size, sha256)

    def open(self, root_uri: str, path: str) -> tuple[FileInfo, Iterator[bytes]]:
        relative, target = self._target(root_uri, path, "path")
        file = _open_file(target, relative)
        try:
            # A first pass, so that the answer's first message can carry the checksum.
            digest = hashlib.file_digest(file, "sha256").hexdigest()
            size = file.tell()
            file.seek(0)
        except BaseException:
            file.close()
            raise
        return FileInfo(relative, False, size, digest), _chunks(file)

    def list(self, root_uri: str, path: str = "") -> list[FileInfo]:
        relative, folder = self._target(root_uri, path, "path", allow_empty=True)
        try:
            with os.scandir(folder) as entries:
                # Links and special files are left out (they could not be downloaded anyway), and
                # so are uploads in progress.
                infos = [_listed(relative, entry) for entry in entries
                         if _is_plain(entry) and not _UPLOAD_IN_PROGRESS.fullmatch(entry.name)]
        except FileNotFoundError:
            if not relative:
                return []
            raise NotFound(f"no artifact folder {relative}") from None
        except NotADirectoryError:
            raise FailedPrecondition(f"{relative} is a file, not a folder") from None
        return sorted(infos, key=lambda info: (not info.is_dir, info.path))

    def _uri(self, relative: str) -> str:
        return (self.root / relative).as_uri()

    def _location(self, uri: str, field: str) -> str:
        """The store-relative path of ``uri``, a folder inside the store reached without symlinks."""
        relative = self._relative(uri, field)
        self._checked(relative, field)
        return relative

    def _target(self, root_uri: str, path: str, field: str, *, allow_empty: bool = False) -> tuple[str, Path]:
        """``path`` cleaned, and where it is under the run's artifact root ``root_uri``."""
        try:
            run = self._relative(root_uri, "artifact_uri")
        except InvalidArgument as error:
            # The run's root comes from the database, not the request: the store was moved or reconfigured.
            raise FailedPrecondition(f"the run's artifact root is not in this store: {error.description}") from None
        relative = clean_relative_path(path, field, allow_empty=allow_empty)
        return relative, self._checked(f"{run}/{relative}" if relative else run, field)

    def _relative(self, uri: str, field: str) -> str:
        """The store-relative path named by ``uri``, checked without touching the disk."""
        path = local_path(uri, field)
        if not os.path.isabs(path):
            raise InvalidArgument(field, "must be an absolute file:// URI or path")
        prefix = os.path.join(self.root, "")
        if not path.startswith(prefix) or path == prefix:
            # Never the store's path in a message: a caller has no business learning the server's file system.
            raise InvalidArgument(field, "must name a folder inside this server's artifact store (the folder the "
                                         "tracking service was started with)")
        return clean_relative_path(path.removeprefix(prefix), field)

    def _checked(self, relative: str, field: str) -> Path:
        """``root / relative``, refused when a symlink lies on the way (itself included) or it resolves outside."""
        current = self.root
        for name in relative.split("/"):
            current = current / name
            try:
                is_link = stat.S_ISLNK(os.lstat(current).st_mode)
            except (FileNotFoundError, NotADirectoryError):
                break  # What does not exist yet cannot be a link.
            if is_link:
                raise InvalidArgument(field, f"must not go through a symbolic link ({name!r})")
        target = self.root / relative
        # Catches what the walk cannot see, such as a link swapped in since.
        if not is_within(self.root, target):
            raise InvalidArgument(field, "must stay inside the artifact store")
        return target

    def _existing_ancestor(self, folder: Path) -> Path:
        """The deepest of ``folder`` and its parents (up to the root) that exists; FailedPrecondition on a file."""
        existing = self.root
        for name in folder.relative_to(self.root).parts:
            try:
                mode = os.lstat(existing / name).st_mode
            except FileNotFoundError:
                break
            if not stat.S_ISDIR(mode):
                raise FailedPrecondition(f"cannot create the folder {name!r}: a file has that name")
            existing = existing / name
        return existing

    def _make_folders(self, folder: Path) -> None:
        """``mkdir -p`` with DIR_MODE on every folder it creates (mkdir -p leaves the parents to the umask)."""
        current = self.root
        for name in folder.relative_to(self.root).parts:
            current = current / name
            try:
                os.mkdir(current, DIR_MODE)
            except FileExistsError:
                if not current.is_dir():
                    raise FailedPrecondition(f"cannot create the folder {name!r}: a file has that name") from None
                continue
            os.chmod(current, DIR_MODE)


def _write(temporary: Path, chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int) -> None:
    """Write ``chunks`` to a new file and flush it to disk, refusing content that does not match the header."""
    digest = hashlib.sha256()
    received = 0
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    with open(descriptor, "wb") as out:
        os.fchmod(descriptor, FILE_MODE)
        for chunk in chunks:
            received += len(chunk)
            # Checked per chunk: a client must not be able to fill the disk before being stopped.
            if received > max_bytes:
                raise ResourceExhausted(f"the artifact is over the limit of {max_bytes} bytes")
            if received > size:
                raise InvalidArgument("header.size", f"is {size} but more bytes were sent")
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(descriptor)
    if received != size:
        raise InvalidArgument("header.size", f"is {size} but {received} bytes were sent")
    if digest.hexdigest() != sha256:
        raise InvalidArgument("header.sha256", "does not match the content sent")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: fsyncing the file alone does not persist its new name."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _open_file(target: Path, relative: str) -> BinaryIO:
    try:
        # O_NOFOLLOW: a link that appeared since the walk of _checked must still not be followed.
        descriptor = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no artifact {relative}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InvalidArgument("path", "must not be a symbolic link") from None
        raise
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise FailedPrecondition(f"{relative} is {'a folder' if stat.S_ISDIR(mode) else 'not a regular file'}")
    return open(descriptor, "rb")


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK_SIZE):
            yield chunk


def _is_plain(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)


def _listed(folder: str, entry: os.DirEntry[str]) -> FileInfo:
    is_dir = entry.is_dir(follow_symlinks=False)
    size = 0 if is_dir else entry.stat(follow_symlinks=False).st_size
    return FileInfo(f"{folder}/{entry.name}" if folder else entry.name, is_dir, size)
