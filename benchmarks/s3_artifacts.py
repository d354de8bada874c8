#!/usr/bin/env python
"""Memory of the tracking service while a large artifact goes through it to S3 and back.

A tracking service process (``python -m tracking_service --artifacts s3://...``) against moto's S3 API
server (its own process, tests/s3_server.py), and, for comparison, one on a local folder. Each uploads a
``--size-mb`` file through :class:`TrackingClient.upload_file` (1 MiB gRPC chunks; the S3 store sends
5 MiB multipart parts) and downloads it again, checking the bytes. The service's resident memory is read
from /proc: VmRSS before the transfer, and VmHWM (the peak resident set, reset just before) after it.

    PYTHONPATH=. .venv/bin/python benchmarks/s3_artifacts.py --size-mb 200

This is a measurement, not a test. (moto keeps each object's content in memory and temporary files of
its own process: that process is not the one measured.)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ServerProcess  # noqa: E402
from tests.s3_server import MotoServer  # noqa: E402
from trial_worker.tracking import TrackingClient  # noqa: E402


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        for start in range(0, size, len(block)):
            piece = block[: min(len(block), size - start)]
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest()


def measure(name: str, artifacts: str, folder: Path, data: Path, expected: str) -> dict:
    server = ServerProcess(f"sqlite:///{folder / f'{name}.db'}", "--artifacts", artifacts, module="tracking_service")
    try:
        with TrackingClient(server.address) as client:
            run = client.create_run(0)
            # A small round trip first: imports, the S3 client and the gRPC stream are set up before the baseline.
            (folder / "warm.txt").write_text("warm")
            client.upload_file(run.id, folder / "warm.txt")
            client.download(run.id, "warm.txt", folder / f"{name}-warm")
            # Resets VmHWM to the current RSS (proc(5), clear_refs): the peak is then the transfer's alone.
            Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")
            before = memory_mb(server.proc.pid, "VmRSS")
            started = time.perf_counter()
            info = client.upload_file(run.id, data, "big")
            upload_s = time.perf_counter() - started
            after_upload = memory_mb(server.proc.pid, "VmHWM")
            started = time.perf_counter()
            out = client.download(run.id, f"big/{data.name}", folder / f"{name}-out")
            download_s = time.perf_counter() - started
            after_download = memory_mb(server.proc.pid, "VmHWM")
        assert info.sha256 == expected
        received = hashlib.sha256()
        with out.open("rb") as file:
            while chunk := file.read(1 << 20):
                received.update(chunk)
        assert received.hexdigest() == expected, "the downloaded file differs"
        out.unlink()
        return {"store": name, "rss_before_mb": before, "peak_after_upload_mb": after_upload,
                "peak_after_download_mb": after_download, "upload_s": upload_s, "download_s": download_s}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args()
    size = args.size_mb << 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "big.bin"
        expected = write_file(data, size)
        moto = MotoServer()
        try:
            os.environ.update(moto.environment(folder))
            bucket = moto.new_bucket()
            rows = [measure("s3", f"s3://{bucket}/bench", folder, data, expected),
                    measure("local", str(folder / "artifacts"), folder, data, expected)]
        finally:
            moto.stop()
    print(f"{args.size_mb} MiB file through the tracking service (peak = VmHWM of the service process)\n")
    print("| store | RSS before (MiB) | peak after upload (MiB) | peak after download (MiB) | growth (MiB) "
          "| upload (s) | download (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        growth = row["peak_after_download_mb"] - row["rss_before_mb"]
        print(f"| {row['store']} | {row['rss_before_mb']:.0f} | {row['peak_after_upload_mb']:.0f} | "
              f"{row['peak_after_download_mb']:.0f} | {growth:.0f} | {row['upload_s']:.1f} | {row['download_s']:.1f} |")


if __name__ == "__main__":
    main()
