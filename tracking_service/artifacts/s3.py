"""The artifact store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, GCS's XML API).

Selected by ``--artifacts s3://bucket/prefix``. Credentials, region and endpoint come from the standard
AWS settings that boto3 reads (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance and pod
roles; ``AWS_REGION``/``AWS_DEFAULT_REGION``; ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``), so the store has
no settings of its own beyond the URL.

Folders do not exist in S3: a folder is the prefix of the keys under it. What the local store gets from the
file system (a file cannot replace a folder, nor a folder sit under a file) is checked here with HEAD and
LIST requests before an upload; two replicas racing to create ``a`` and ``a/b`` at the same moment can
both succeed (S3 has no transaction to prevent it), which the listing then shows as both a file and a folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tracking_service.artifacts.paths import clean_relative_path
from tracking_service.artifacts.store import CHUNK_SIZE, ArtifactStore, FileInfo, check_upload_header
from tuning_common.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    TuningError,
    Unavailable,
)

# S3's smallest part (but the last). Upload memory is one part per upload in flight, so the smallest
# it may be; larger files get larger parts (S3 allows at most MAX_PARTS of them).
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
# The user-metadata key (x-amz-meta-sha256) that carries the checksum verified at upload: S3's own
# checksums of multipart objects are checksums of parts, not the SHA-256 of the file that clients check.
SHA256_METADATA = "sha256"

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (dots allowed, no "..").
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def part_size_for(size: int) -> int:
    """The part size of a ``size``-byte upload: the minimum, unless that would need more than MAX_PARTS."""
    return max(MIN_PART_SIZE, math.ceil(size / MAX_PARTS))


def parse_s3_url(url: str, field: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket[/prefix]``, the prefix without its slashes ("" for none)."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise InvalidArgument(field, f"must be an s3://bucket/prefix URL, not scheme {parts.scheme!r}")
    if parts.query or parts.fragment:
        raise InvalidArgument(field, "must not have a query or fragment ('?', '#')")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise InvalidArgument(field, "must name a bucket only: credentials and endpoint come from the AWS settings "
                                     "(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_S3, ...), not the URL")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidArgument(field, f"bucket {bucket!r} is not a valid S3 bucket name (3-63 characters: lowercase "
                                     "letters, digits, '.' and '-')")
    prefix = parts.path.strip("/")
    if parts.path.startswith("//") or parts.path.endswith("//"):
        raise InvalidArgument(field, "must not contain empty segments ('//')")
    return bucket, clean_relative_path(prefix, field, allow_empty=True)


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client configured from the standard AWS settings of the environment."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # boto3 reads AWS_DEFAULT_REGION only; AWS_REGION is what the other SDKs (and most tutorials) set.
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    config = Config(
        # Path-style ("endpoint/bucket/key") for self-hosted endpoints: MinIO and Ceph behind one host name
        # have no wildcard DNS for virtual-hosted buckets ("bucket.endpoint"); AWS itself keeps the default.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"mode": "standard"},
        # Multipart parts carry no per-request SHA-256 of their own (the file's is checked in upload()):
        # computing one would read each part twice.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Presigned URLs with Signature Version 4, which every region and S3-compatible server accepts (some
        # botocore versions still presign with the retired version 2 when talking to a custom endpoint).
        signature_version="s3v4",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)


class S3ArtifactStore(ArtifactStore):
    """Objects at ``s3://<bucket>/<prefix>/<experiment_id>/<run_id>/artifacts/<path>`` by default."""

    def __init__(self, url: str, *, client: Any = None, field: str = "artifacts") -> None:
        self.bucket, self.prefix = parse_s3_url(url, field)
        self.client = client or s3_client()
        # Checked at startup, so that a wrong bucket, endpoint or credentials stop the service with the
        # setting's name rather than fail every artifact request later.
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:  # noqa: BLE001 - every failure here means the same: cannot use the bucket
            raise InvalidArgument(field, f"bucket {self.bucket!r} cannot be used: {_describe(error)} (check "
                                         "AWS_ENDPOINT_URL_S3, the region and the credentials)") from None

    # -- locations ------------------------------------------------------------------------------

    def run_root(self, experiment_id: int, run_id: str, experiment_location: str | None) -> str:
        base = self._relative(experiment_location, "artifact_location") if experiment_location else str(experiment_id)
        run = clean_relative_path(run_id, "run_id")
        if "/" in run:
            raise InvalidArgument("run_id", "must be a single name, not a path")
        return self._uri(f"{base}/{run}/artifacts")

    def default_experiment_location(self, experiment_id: int) -> str:
        return self._uri(str(experiment_id))

    def check_location(self, uri: str, field: str) -> str:
        return self._uri(self._relative(uri, field))

    def exists(self, uri: str) -> bool:
        try:
            key = self._key(self._relative(uri, "uri"))
        except InvalidArgument:
            return False
        with _s3_errors():
            return self._is_file(key) or self._is_folder(key)

    # -- files ----------------------------------------------------------------------------------

    def upload(
        self, root_uri: str, path: str, chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int
    ) -> FileInfo:
        check_upload_header(size, sha256, max_bytes)
        relative, key = self._target(root_uri, path, "header.path")
        with _s3_errors():
            self._check_no_conflict(relative, key)
            # Nothing is visible under the final key until the content has been counted and hashed in full: a
            # small file is sent in one PUT after the check, a large one as a multipart upload that is completed
            # (which is when S3 makes it visible, atomically) only after the check, and aborted otherwise. This
            # needs no temporary key, and so no server-side copy that would double the bytes moved.
            part_size = part_size_for(size)
            metadata = {SHA256_METADATA: sha256}
            if size <= part_size:
                body = _read_all(chunks, size=size, sha256=sha256, max_bytes=max_bytes)
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata)
            else:
                self._multipart(key, chunks, size=size, sha256=sha256, max_bytes=max_bytes, part_size=part_size,
                                metadata=metadata)
        return FileInfo(relative, False, size, sha256)

    def open(self, root_uri: str, path: str) -> tuple[FileInfo, Iterator[bytes]]:
        relative, key = self._target(root_uri, path, "path")
        with _s3_errors():
            head = self._head(key)
            if head is None:
                if self._is_folder(key):
                    raise FailedPrecondition(f"{relative} is a folder")
                raise NotFound(f"no artifact {relative}")
            etag = head["ETag"]
            digest = head.get("Metadata", {}).get(SHA256_METADATA, "")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                # Written by something other than this service: a first pass, as the local store does.
                digest = _sha256_of(self._get(key, etag, relative))
            body = self._get(key, etag, relative)
        return FileInfo(relative, False, head["ContentLength"], digest), _chunks(body)

    def download_url(self, root_uri: str, path: str, expires_s: int) -> tuple[FileInfo, str]:
        relative, key = self._target(root_uri, path, "path")
        with _s3_errors():
            head = self._head(key)
            if head is None:
                if self._is_folder(key):
                    raise FailedPrecondition(f"{relative} is a folder")
                raise NotFound(f"no artifact {relative}")
            url = self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                      ExpiresIn=expires_s)
        # Not pinned to this version of the object (a caller would have to send If-Match): the checksum lets
        # the caller see a file replaced since. Objects written by other tools have none ("").
        digest = head.get("Metadata", {}).get(SHA256_METADATA, "")
        return FileInfo(relative, False, head["ContentLength"], digest if re.fullmatch(r"[0-9a-f]{64}", digest)
                        else ""), url

    def list(self, root_uri: str, path: str = "") -> list[FileInfo]:
        relative, key = self._target(root_uri, path, "path", allow_empty=True)
        folder = f"{key}/"
        folders: list[FileInfo] = []
        files: list[FileInfo] = []
        # Whether anything at all is under the folder: one that holds only keys left out below still exists.
        seen = False
        with _s3_errors():
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                seen = seen or bool(page.get("CommonPrefixes") or page.get("Contents"))
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(folder):].removesuffix("/")
                    if _is_clean_name(name):
                        folders.append(FileInfo(f"{relative}/{name}" if relative else name, True, 0))
                for item in page.get("Contents", []):
                    name = item["Key"][len(folder):]
                    # Keys no upload could have made (planted by other tools: "a//b", "../x", a folder marker
                    # "a/") are left out, as the local store leaves out links: they could not be downloaded.
                    if _is_clean_name(name):
                        files.append(FileInfo(f"{relative}/{name}" if relative else name, False, item["Size"]))
            if not seen and relative:
                if self._is_file(key):
                    raise FailedPrecondition(f"{relative} is a file, not a folder")
                raise NotFound(f"no artifact folder {relative}")
        return sorted(folders, key=lambda info: info.path) + sorted(files, key=lambda info: info.path)

    # -- helpers --------------------------------------------------------------------------------

    def _uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key(relative)}"

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _relative(self, uri: str, field: str) -> str:
        """The store-relative path of ``uri``, which must name something under this store's bucket and prefix."""
        parts = urlsplit(uri)
        if parts.scheme != "s3":
            raise InvalidArgument(field, f"must be an s3:// URI inside this server's artifact store (s3://"
                                         f"{self.bucket}/{self.prefix}), not scheme {parts.scheme!r}")
        if parts.netloc != self.bucket or parts.query or parts.fragment:
            raise InvalidArgument(field, "must name a folder inside this server's artifact store (the bucket and "
                                         "prefix the tracking service was started with)")
        key = parts.path.removeprefix("/")
        prefix = f"{self.prefix}/" if self.prefix else ""
        if not key.startswith(prefix) or key == prefix:
            raise InvalidArgument(field, "must name a folder inside this server's artifact store (the bucket and "
                                         "prefix the tracking service was started with)")
        return clean_relative_path(key.removeprefix(prefix), field)

    def _target(self, root_uri: str, path: str, field: str, *, allow_empty: bool = False) -> tuple[str, str]:
        """``path`` cleaned, and its key under the run's artifact root ``root_uri``."""
        try:
            run = self._relative(root_uri, "artifact_uri")
        except InvalidArgument as error:
            # The run's root comes from the database, not the request: the store was moved or reconfigured.
            raise FailedPrecondition(f"the run's artifact root is not in this store: {error.description}") from None
        relative = clean_relative_path(path, field, allow_empty=allow_empty)
        return relative, self._key(f"{run}/{relative}" if relative else run)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise

    def _is_file(self, key: str) -> bool:
        return self._head(key) is not None

    def _is_folder(self, key: str) -> bool:
        return self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{key}/", MaxKeys=1).get("KeyCount", 0) > 0

    def _check_no_conflict(self, relative: str, key: str) -> None:
        if self._is_folder(key):
            raise FailedPrecondition(f"cannot replace the folder {relative} with a file")
        names = relative.split("/")
        base = key[: len(key) - len(relative)]
        for depth in range(1, len(names)):
            if self._is_file(base + "/".join(names[:depth])):
                raise FailedPrecondition(f"cannot create the folder {names[depth - 1]!r}: a file has that name")

    def _get(self, key: str, etag: str, relative: str) -> Any:
        try:
            # IfMatch: the content is that of the HEAD above (whose size and checksum the answer carries),
            # not of a file replaced since.
            return self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag)["Body"]
        except ClientError as error:
            if _status(error) == 412:
                raise Aborted(f"{relative} was replaced while being read; try again") from None
            if _status(error) == 404:
                raise NotFound(f"no artifact {relative}") from None
            raise

    def _multipart(self, key: str, chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int,
                   part_size: int, metadata: dict[str, str]) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=metadata)["UploadId"]
        try:
            parts = []
            for number, part in enumerate(_parts(chunks, size=size, sha256=sha256, max_bytes=max_bytes,
                                                 part_size=part_size), start=1):
                answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                  Body=part)
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            # _parts has checked the size and checksum by now: only verified content is completed.
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001, S110 - the bucket's lifecycle rule removes what an abort could not
                pass
            raise


class _Counter:
    """Counts and hashes an upload's chunks, refusing them as soon as they break the header or the limit."""

    def __init__(self, size: int, sha256: str, max_bytes: int) -> None:
        self.size, self.sha256, self.max_bytes = size, sha256, max_bytes
        self.received = 0
        self.digest = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise ResourceExhausted(f"the artifact is over the limit of {self.max_bytes} bytes")
        if self.received > self.size:
            raise InvalidArgument("header.size", f"is {self.size} but more bytes were sent")
        self.digest.update(chunk)

    def check(self) -> None:
        if self.received != self.size:
            raise InvalidArgument("header.size", f"is {self.size} but {self.received} bytes were sent")
        if self.digest.hexdigest() != self.sha256:
            raise InvalidArgument("header.sha256", "does not match the content sent")


def _read_all(chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int) -> bytearray:
    counter = _Counter(size, sha256, max_bytes)
    buffer = bytearray()
    for chunk in chunks:
        counter.add(chunk)
        buffer += chunk
    counter.check()
    return buffer


def _parts(chunks: Iterable[bytes], *, size: int, sha256: str, max_bytes: int, part_size: int) -> Iterator[bytearray]:
    """The upload in parts of ``part_size`` bytes (the last one shorter), checked in full before the last is
    yielded: a caller that completes the upload after the last part completes only verified content.

    Each part is one buffer, reused once the caller asks for the next (no copy: memory is one part)."""
    counter = _Counter(size, sha256, max_bytes)
    buffer = bytearray()
    # Bytes moved into parts so far (the counter has counted the whole chunk already). A full part is held
    # back when it ends the declared size: it is the last, yielded only after the check.
    consumed = 0
    for chunk in chunks:
        counter.add(chunk)
        view = memoryview(chunk)
        while view:
            piece = view[:part_size - len(buffer)]
            buffer += piece
            consumed += len(piece)
            view = view[len(piece):]
            if len(buffer) == part_size and consumed < size:
                yield buffer
                buffer.clear()
    counter.check()
    yield buffer


def _chunks(body: Any) -> Iterator[bytes]:
    """``body`` in chunks of exactly CHUNK_SIZE (the last one shorter): a socket read may return fewer bytes."""
    with _closing(body), _s3_errors():
        pending = bytearray()
        while data := body.read(CHUNK_SIZE - len(pending)):
            pending += data
            if len(pending) == CHUNK_SIZE:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)


def _sha256_of(body: Any) -> str:
    digest = hashlib.sha256()
    with _closing(body):
        while data := body.read(CHUNK_SIZE):
            digest.update(data)
    return digest.hexdigest()


@contextmanager
def _closing(body: Any) -> Iterator[None]:
    try:
        yield
    finally:
        body.close()


def _is_clean_name(name: str) -> bool:
    try:
        return bool(name) and clean_relative_path(name, "key") == name
    except InvalidArgument:
        return False


def _status(error: Any) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code') or _status(error)} {info.get('Message', '')}".strip()
    return str(error) or type(error).__name__


@contextmanager
def _s3_errors() -> Iterator[None]:
    """S3 failures as the suite's errors: the service's clients see UNAVAILABLE (retryable) or a precondition."""
    try:
        yield
    except TuningError:
        raise
    except ClientError as error:
        if _status(error) == 403:
            raise FailedPrecondition(f"the artifact store refused access ({_describe(error)}): check the tracking "
                                     "service's S3 credentials and bucket policy") from None
        raise Unavailable(f"the artifact store failed: {_describe(error)}") from None
    except BotoCoreError as error:
        raise Unavailable(f"the artifact store cannot be reached: {_describe(error)}") from None
