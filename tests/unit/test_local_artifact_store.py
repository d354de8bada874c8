"""The local-folder artifact store in particular: modes, staging, folders left behind, links on the way,
locations. What every store promises is tests/contracts/test_artifact_store_contract.py."""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from pathlib import Path

import pytest

from tracking_service.artifacts import FileInfo, LocalArtifactStore, make_store
from tracking_service.artifacts.local import local_path
from tuning_common.errors import FailedPrecondition, InvalidArgument, ResourceExhausted

RUN = "0123456789abcdef0123456789abcdef"
LIMIT = 64 << 20


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def root(store: LocalArtifactStore) -> str:
    return store.run_root(3, RUN, None)


def folder(uri: str) -> Path:
    return Path(local_path(uri, "uri"))


def put(store: LocalArtifactStore, root: str, path: str, data: bytes, **header) -> FileInfo:
    header = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "max_bytes": LIMIT, **header}
    return store.upload(root, path, [data[i:i + 100_000] for i in range(0, len(data), 100_000)], **header)


def read(store: LocalArtifactStore, root: str, path: str) -> bytes:
    return b"".join(store.open(root, path)[1])


def test_modes_do_not_depend_on_the_umask(store, root):
    previous = os.umask(0o077)
    try:
        put(store, root, "a/b/c.txt", b"x")
    finally:
        os.umask(previous)
    run = folder(root)
    assert stat.S_IMODE((run / "a/b/c.txt").stat().st_mode) == 0o644
    for path in (run / "a/b", run / "a", run, run.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ({"size": 9}, "header.size"),
        ({"size": 11}, "header.size"),
        ({"sha256": hashlib.sha256(b"something else").hexdigest()}, "header.sha256"),
        ({"sha256": "ABC"}, "header.sha256"),
        ({"size": -1}, "header.size"),
    ],
)
def test_a_mismatch_leaves_nothing_behind(store, root, header, field):
    put(store, root, "kept.txt", b"previous")
    with pytest.raises(InvalidArgument) as error:
        put(store, root, "kept.txt", b"0123456789", **header)
    assert error.value.field == field
    with pytest.raises(InvalidArgument):
        put(store, root, "new.txt", b"0123456789", **header)
    assert sorted(os.listdir(folder(root))) == ["kept.txt"]
    assert read(store, root, "kept.txt") == b"previous"


def test_an_error_while_streaming_leaves_nothing_behind(store, root):
    def broken():
        yield b"start"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.upload(root, "a.txt", broken(), size=10, sha256="0" * 64, max_bytes=LIMIT)
    # Not even the run's folder was created for it.
    assert os.listdir(store.root) == []


def test_max_bytes_is_enforced_before_and_while_streaming(store, root):
    def never():
        raise AssertionError("read a stream that was declared too large")
        yield b""

    with pytest.raises(ResourceExhausted):
        store.upload(root, "big", never(), size=LIMIT + 1, sha256="0" * 64, max_bytes=LIMIT)
    # The client lies about the size and never stops: the upload ends as soon as the limit is passed.
    with pytest.raises(ResourceExhausted):
        store.upload(root, "big", itertools.repeat(b"x" * 1024), size=4096, sha256="0" * 64, max_bytes=4096)
    assert os.listdir(store.root) == []


def all_entries(top: Path) -> list[str]:
    return sorted(str(path.relative_to(top)) for path in top.rglob("*"))


def broken_stream():
    yield b"start"
    raise ConnectionError("client went away")


@pytest.mark.parametrize(
    "failure",
    [
        {"size": 9},
        {"sha256": hashlib.sha256(b"something else").hexdigest()},
        {"chunks": broken_stream},
        {"max_bytes": 4},
    ],
    ids=["size", "sha256", "stream", "max_bytes"],
)
def test_a_failed_upload_into_new_folders_leaves_no_empty_folders(store, root, failure):
    def upload(path: str, data: bytes) -> FileInfo:
        header = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "max_bytes": LIMIT, **failure}
        chunks = header.pop("chunks", lambda: [data[:4], data[4:]])()
        return store.upload(root, path, chunks, **header)

    with pytest.raises((InvalidArgument, ConnectionError, ResourceExhausted)):
        upload("a/b/c.txt", b"0123456789")
    assert store.list(root) == []
    assert all_entries(store.root) == []

    # Folders that were there before stay, with their files, and no new folder appears under them.
    put(store, root, "kept/file.txt", b"kept")
    before = all_entries(store.root)
    with pytest.raises((InvalidArgument, ConnectionError, ResourceExhausted)):
        upload("kept/x/y/z.txt", b"0123456789")
    assert all_entries(store.root) == before
    assert store.list(root) == [FileInfo("kept", True, 0)]
    assert store.list(root, "kept") == [FileInfo("kept/file.txt", False, 4)]

    # A good upload afterwards creates the folders and stores the file.
    assert put(store, root, "a/b/c.txt", b"0123456789").path == "a/b/c.txt"
    assert read(store, root, "a/b/c.txt") == b"0123456789"
    assert store.list(root, "a/b") == [FileInfo("a/b/c.txt", False, 10)]
    assert store.list(root) == [FileInfo("a", True, 0), FileInfo("kept", True, 0)]


def test_a_folder_over_a_file_is_refused_before_the_content_is_read(store, root):
    put(store, root, "plots/loss.png", b"png")

    def never():
        raise AssertionError("read the content of an upload that cannot be stored")
        yield b""

    with pytest.raises(FailedPrecondition):
        store.upload(root, "plots/loss.png/inner", never(), size=1, sha256="0" * 64, max_bytes=LIMIT)
    assert store.list(root, "plots") == [FileInfo("plots/loss.png", False, 3)]


def test_concurrent_uploads_into_the_same_new_folders_all_land(store, root):
    from concurrent.futures import ThreadPoolExecutor

    def good(i: int) -> FileInfo:
        return put(store, root, f"shared/deep/{i}.txt", str(i).encode())

    def bad(i: int) -> None:
        with pytest.raises(ConnectionError):
            store.upload(root, f"shared/deep/bad{i}.txt", broken_stream(), size=10, sha256="0" * 64, max_bytes=LIMIT)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(good if i % 2 else bad, i) for i in range(32)]
        for future in futures:
            future.result()
    expected = sorted(f"deep/{i}.txt" for i in range(1, 32, 2))
    assert [info.path for info in store.list(root, "shared/deep")] == [f"shared/{path}" for path in expected]
    # Nothing else: no file of a failed upload, no temporary file left.
    assert all_entries(folder(root)) == ["shared", *(f"shared/{path}" for path in ["deep", *expected])]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_bytes(b"secret")
    return secret


def test_a_symlinked_parent_folder_is_refused(store, root, outside):
    run = folder(root)
    run.mkdir(parents=True)
    (run / "real").mkdir()
    (run / "real/inside.txt").write_bytes(b"inside")
    (run / "outside").symlink_to(outside)
    (run / "inside").symlink_to(run / "real")
    for path in ("outside/secret.txt", "inside/inside.txt"):
        with pytest.raises(InvalidArgument):
            store.open(root, path)
        with pytest.raises(InvalidArgument):
            store.list(root, path.split("/")[0])
        with pytest.raises(InvalidArgument):
            put(store, root, f"{path.split('/')[0]}/new.txt", b"new")
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_symlinked_run_root_is_refused(store, root, outside):
    folder(root).parent.mkdir(parents=True)
    folder(root).symlink_to(outside)
    with pytest.raises(InvalidArgument):
        store.list(root)
    with pytest.raises(InvalidArgument):
        store.open(root, "secret.txt")


def test_check_location_normalises_uris_inside_the_store(store):
    inside = f"{store.root.as_uri()}/team/models"
    for uri in (inside, inside + "/", f"file:{store.root}/team/models", f"file://localhost{store.root}/team/models",
                f"{store.root}/team/models"):
        assert store.check_location(uri, "artifact_location") == inside


def test_check_location_keeps_odd_names_uri_encoded(store):
    uri = store.check_location(f"{store.root}/my models/é", "source")
    assert uri == f"{store.root.as_uri()}/my%20models/%C3%A9"
    assert store.check_location(uri, "source") == uri


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc",
        "/etc",
        "s3://bucket/models",
        "http://example.com/models",
        "file://otherhost/{root}/models",
        "relative/models",
        "{root}",
        "{root}/",
        "{root}-evil/models",
        "{root}/../outside",
        "{root}/a/../../outside",
        "{root}/a/%2e%2e/%2e%2e/outside",
        "{uri}/a/%252e%252e/outside",
        "{root}/a//b",
        "{uri}/a?b",
        "{uri}/escape/models",
    ],
)
def test_check_location_refuses_anything_outside_the_store(store, outside, uri):
    (store.root / "escape").symlink_to(outside)
    with pytest.raises(InvalidArgument) as error:
        store.check_location(uri.format(root=store.root, uri=store.root.as_uri()), "source")
    assert error.value.field == "source"


def test_run_root_layouts(store):
    base = store.root.as_uri()
    assert store.default_experiment_location(3) == f"{base}/3"
    assert store.run_root(3, RUN, None) == f"{base}/3/{RUN}/artifacts"
    assert store.run_root(3, RUN, "") == f"{base}/3/{RUN}/artifacts"
    assert store.run_root(3, RUN, f"{base}/team/") == f"{base}/team/{RUN}/artifacts"
    with pytest.raises(InvalidArgument, match="artifact_location"):
        store.run_root(3, RUN, "file:///elsewhere")
    with pytest.raises(InvalidArgument, match="run_id"):
        store.run_root(3, "a/b", None)


def test_a_run_root_outside_the_store_is_a_failed_precondition(store, tmp_path):
    other = LocalArtifactStore(tmp_path / "other").run_root(1, RUN, None)
    with pytest.raises(FailedPrecondition):
        store.list(other)


def test_exists(store, root):
    put(store, root, "model/model.pkl", b"x")
    assert store.exists(f"{root}/model/model.pkl")
    assert store.exists(f"{root}/model")
    assert not store.exists(f"{root}/missing")
    assert not store.exists(f"{root}/../../..")
    assert not store.exists("s3://bucket/model")


def test_make_store_takes_a_path_or_a_file_uri(tmp_path):
    assert make_store(str(tmp_path / "a")).root == (tmp_path / "a").resolve()
    assert make_store((tmp_path / "b").as_uri()).root == (tmp_path / "b").resolve()
    assert (tmp_path / "b").is_dir()
    for setting in ("s3://bucket/artifacts", ""):
        with pytest.raises(InvalidArgument) as error:
            make_store(setting)
        assert error.value.field == "artifacts"
    with pytest.raises(InvalidArgument, match="file://"):
        make_store("gs://bucket")
