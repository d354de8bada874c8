"""The artifact store contract: what every :class:`ArtifactStore` promises, run against each one.

Each implementation is one :class:`StoreCase` in ``STORES``: how to make an empty store, and (for
stores that have them) how to plant a symbolic link the way someone with access to the storage
could. The S3 store runs against a real S3 API server (moto's, in its own process), a new bucket per test.

The interface has no delete (runs keep their files; deleting a run moves it to the trash), so
neither does the contract.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tracking_service.artifacts import CHUNK_SIZE, ArtifactStore, FileInfo, LocalArtifactStore
from tracking_service.artifacts.local import local_path
from tuning_common.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

pytestmark = pytest.mark.contract

RUN = "0123456789abcdef0123456789abcdef"
LIMIT = 64 << 20


def _local_link(store: ArtifactStore, root_uri: str, name: str, target: Path) -> None:
    run = Path(local_path(root_uri, "uri")) / name
    run.parent.mkdir(parents=True, exist_ok=True)
    run.symlink_to(target)


def _s3_store(request: pytest.FixtureRequest, folder: Path) -> ArtifactStore:
    from tracking_service.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(request.getfixturevalue("s3_artifacts"))


@dataclass(frozen=True)
class StoreCase:
    make: Callable[[pytest.FixtureRequest, Path], ArtifactStore]
    # Puts a symbolic link named ``name`` in the run's root, pointing at ``target`` (outside the
    # store); None for a store that has no links.
    plant_link: Callable[[ArtifactStore, str, str, Path], None] | None


STORES = [
    pytest.param(StoreCase(lambda request, folder: LocalArtifactStore(folder / "store"), _local_link), id="local"),
    pytest.param(StoreCase(_s3_store, None), id="s3"),
]


@pytest.fixture(params=STORES)
def case(request) -> StoreCase:
    return request.param


@pytest.fixture
def store(case: StoreCase, request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    return case.make(request, tmp_path)


@pytest.fixture
def root(store: ArtifactStore) -> str:
    return store.run_root(3, RUN, None)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_bytes(b"secret")
    return secret


def put(store: ArtifactStore, root: str, path: str, data: bytes, **header) -> FileInfo:
    header = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "max_bytes": LIMIT, **header}
    return store.upload(root, path, [data[i:i + 100_000] for i in range(0, len(data), 100_000)], **header)


def read(store: ArtifactStore, root: str, path: str) -> bytes:
    return b"".join(store.open(root, path)[1])


def test_a_file_round_trips_with_its_size_and_checksum(store, root):
    data = os.urandom(3 * CHUNK_SIZE + 12_345)
    expected = FileInfo("model/weights.bin", False, len(data), hashlib.sha256(data).hexdigest())
    assert put(store, root, "model/weights.bin", data) == expected
    info, chunks = store.open(root, "model/weights.bin")
    assert info == expected
    assert [len(chunk) for chunk in chunks] == [CHUNK_SIZE] * 3 + [12_345]
    assert read(store, root, "model/weights.bin") == data
    empty = put(store, root, "empty", b"")
    assert empty == store.open(root, "empty")[0] == FileInfo("empty", False, 0, hashlib.sha256(b"").hexdigest())
    assert read(store, root, "empty") == b""


def test_nested_paths_create_their_folders_and_list_one_level_folders_first(store, root):
    assert store.list(root) == []  # a run that logged nothing
    for path in ("b.txt", "a.txt", "z/1.bin", "c/d/e/deep.txt", "c/f.txt"):
        put(store, root, path, path.encode())
    assert store.list(root) == [
        FileInfo("c", True, 0), FileInfo("z", True, 0), FileInfo("a.txt", False, 5), FileInfo("b.txt", False, 5),
    ]
    assert store.list(root, "c") == [FileInfo("c/d", True, 0), FileInfo("c/f.txt", False, 7)]
    assert store.list(root, "c/d/") == [FileInfo("c/d/e", True, 0)]
    assert store.list(root, "c/d/e") == [FileInfo("c/d/e/deep.txt", False, 14)]
    assert read(store, root, "c/d/e/deep.txt") == b"c/d/e/deep.txt"
    assert store.exists(f"{root}/c/d/e/deep.txt") and store.exists(f"{root}/c/d")
    assert not store.exists(f"{root}/c/nothing")


def test_runs_do_not_see_each_others_files(store):
    first, second = store.run_root(3, RUN, None), store.run_root(3, "f" * 32, None)
    put(store, first, "model.bin", b"first")
    assert store.list(second) == []
    with pytest.raises(NotFound):
        store.open(second, "model.bin")


def test_missing_files_and_folders_are_not_found_and_kinds_are_not_mixed(store, root):
    put(store, root, "plots/loss.png", b"png")
    for path in ("missing.txt", "missing/file.txt", "plots/missing.png"):
        with pytest.raises(NotFound):
            store.open(root, path)
    with pytest.raises(NotFound):
        store.list(root, "missing")
    with pytest.raises(FailedPrecondition):
        store.list(root, "plots/loss.png")
    with pytest.raises(FailedPrecondition):
        store.open(root, "plots")
    with pytest.raises(FailedPrecondition):
        put(store, root, "plots", b"a file over a folder")
    with pytest.raises(FailedPrecondition):
        put(store, root, "plots/loss.png/inner", b"a folder under a file")
    assert read(store, root, "plots/loss.png") == b"png"


def test_an_upload_replaces_a_file_whole_and_a_failed_one_keeps_the_old(store, root):
    put(store, root, "metrics.json", b"old content, longer")
    assert put(store, root, "metrics.json", b"new").size == 3
    assert read(store, root, "metrics.json") == b"new"
    assert store.list(root) == [FileInfo("metrics.json", False, 3)]
    with pytest.raises(InvalidArgument) as error:
        put(store, root, "metrics.json", b"newest", sha256=hashlib.sha256(b"other").hexdigest())
    assert error.value.field == "header.sha256"
    with pytest.raises(InvalidArgument) as error:
        put(store, root, "metrics.json", b"newest", size=5)
    assert error.value.field == "header.size"
    with pytest.raises(ResourceExhausted):
        put(store, root, "metrics.json", b"newest", max_bytes=4)
    assert read(store, root, "metrics.json") == b"new"
    assert store.list(root) == [FileInfo("metrics.json", False, 3)]


def _generated(size: int, piece: int = 256 * 1024) -> Iterator[bytes]:
    """``size`` bytes in pieces, made as they are asked for (the content never exists whole)."""
    block = hashlib.sha256(b"seed").digest() * (piece // 32)
    for start in range(0, size, piece):
        yield block[: min(piece, size - start)]


def test_a_large_file_is_streamed_both_ways(store, root):
    size = 48 << 20
    digest = hashlib.sha256()
    for chunk in _generated(size):
        digest.update(chunk)
    tracemalloc.start()
    try:
        info = store.upload(root, "big/data.bin", _generated(size), size=size, sha256=digest.hexdigest(),
                            max_bytes=LIMIT)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        opened, chunks = store.open(root, "big/data.bin")
        received = hashlib.sha256()
        total = 0
        for chunk in chunks:
            assert len(chunk) <= CHUNK_SIZE
            received.update(chunk)
            total += len(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == opened.size == total == size
    assert received.hexdigest() == opened.sha256 == digest.hexdigest()
    # Neither direction holds the file in memory: a few chunks at most.
    assert upload_peak < 8 * CHUNK_SIZE and download_peak < 8 * CHUNK_SIZE, (upload_peak, download_peak)


HOSTILE = ["../escape", "a/../../escape", "/etc/passwd", "..", "a/./b", "%2e%2e/escape", "a/%2F/b", "a\\..\\b",
           "a//b", "nul\x00byte"]


@pytest.mark.parametrize("path", HOSTILE)
def test_paths_that_could_leave_the_run_are_refused_naming_the_field(store, root, tmp_path, path):
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidArgument) as error:
        put(store, root, path, b"x")
    assert error.value.field == "header.path"
    for call in (store.open, store.list):
        with pytest.raises(InvalidArgument) as error:
            call(root, path)
        assert error.value.field == "path"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written beside the store
    assert store.list(root) == []


def test_symbolic_links_are_never_followed(case, store, root, outside):
    if case.plant_link is None:
        pytest.skip("this store has no symbolic links")
    case.plant_link(store, root, "file-link", outside / "secret.txt")
    case.plant_link(store, root, "folder-link", outside)
    for path in ("file-link", "folder-link", "folder-link/secret.txt"):
        with pytest.raises(InvalidArgument, match="symbolic link") as error:
            store.open(root, path)
        assert error.value.field == "path"
        with pytest.raises(InvalidArgument, match="symbolic link") as error:
            put(store, root, path, b"overwritten")
        assert error.value.field == "header.path"
    for path in ("file-link", "folder-link"):
        with pytest.raises(InvalidArgument, match="symbolic link") as error:
            store.list(root, path)
        assert error.value.field == "path"
    with pytest.raises(InvalidArgument, match="symbolic link"):
        put(store, root, "folder-link/new.txt", b"new")
    assert sorted(os.listdir(outside)) == ["secret.txt"] and (outside / "secret.txt").read_bytes() == b"secret"
    # Listings leave links out rather than describe what they point at.
    assert store.list(root) == []


def test_locations_outside_the_store_are_refused(store, root, outside):
    assert store.check_location(root, "artifact_location") == root
    for uri in (outside.as_uri(), str(outside), f"{root}/../../../../outside", "s3+unknown://bucket/x"):
        with pytest.raises(InvalidArgument) as error:
            store.check_location(uri, "artifact_location")
        assert error.value.field == "artifact_location"
        assert not store.exists(uri)
