#!/usr/bin/env python
"""Memory of the tracking service, and of the gateway, while a large artifact goes through them to S3 and back.

A tracking service process (``python -m tracking_service --artifacts s3://...``) against moto's S3 API
server (its own process, tests/s3_server.py), and, for comparison, one on a local folder. Each uploads a
``--size-mb`` file through :class:`TrackingClient.upload_file` (1 MiB gRPC chunks; the S3 store sends
5 MiB multipart parts) and downloads it again, checking the bytes. With ``--via gateway`` the file goes
instead through a gateway process in front of that service, as MLflow's client sends it: one streamed
HTTP PUT to ``/api/2.0/mlflow-artifacts/artifacts/...`` and one GET back. The resident memory of each
process is read from /proc: VmRSS before the transfer, and VmHWM (the peak resident set, reset just
before) after it.

    PYTHONPATH=. .venv/bin/python benchmarks/s3_artifacts.py --size-mb 200 [--via gateway]

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

import httpx  # noqa: E402

from tests.conftest import GatewayProcess, ServerProcess, memory_mb, reset_peak  # noqa: E402
from tests.s3_server import MotoServer  # noqa: E402
from trial_worker.tracking import TrackingClient  # noqa: E402


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
            before = reset_peak(server.proc.pid)[server.proc.pid]
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

def file_chunks(path: Path):
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            yield chunk


def measure_gateway(name: str, artifacts: str, folder: Path, data: Path, expected: str) -> dict:
    """The same round trip through a gateway process, as MLflow's client makes it (one PUT, one GET)."""
    server = ServerProcess(f"sqlite:///{folder / f'{name}-gw.db'}", "--artifacts", artifacts,
                           module="tracking_service")
    gateway = GatewayProcess(server.address, None, "--max-artifact-bytes", str(data.stat().st_size + (1 << 20)))
    try:
        with TrackingClient(server.address) as client, httpx.Client(base_url=gateway.url, timeout=600) as http:
            run = client.create_run(0)
            base = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.id}/artifacts"
            http.put(f"{base}/warm.txt", content=b"warm").raise_for_status()
            http.get(f"{base}/warm.txt").raise_for_status()
            before = reset_peak(server.proc.pid, gateway.proc.pid)
            started = time.perf_counter()
            http.put(f"{base}/big/{data.name}", content=file_chunks(data),
                     headers={"content-length": str(data.stat().st_size)}).raise_for_status()
            upload_s = time.perf_counter() - started
            after_upload = {pid: memory_mb(pid, "VmHWM") for pid in before}
            started = time.perf_counter()
            received = hashlib.sha256()
            with http.stream("GET", f"{base}/big/{data.name}") as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    received.update(chunk)
            download_s = time.perf_counter() - started
            after_download = {pid: memory_mb(pid, "VmHWM") for pid in before}
        assert received.hexdigest() == expected, "the downloaded file differs"
        return {process: {"store": name, "rss_before_mb": before[pid], "peak_after_upload_mb": after_upload[pid],
                          "peak_after_download_mb": after_download[pid], "upload_s": upload_s,
                          "download_s": download_s}
                for process, pid in (("gateway", gateway.proc.pid), ("tracking service", server.proc.pid))}
    finally:
        gateway.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--via", choices=("tracking", "gateway"), default="tracking",
                        help="send the file to the tracking service's gRPC API, or through a gateway's MLflow route")
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
            stores = (("s3", f"s3://{bucket}/bench"), ("local", str(folder / "artifacts")))
            if args.via == "tracking":
                rows = [("tracking service", measure(name, url, folder, data, expected)) for name, url in stores]
            else:
                rows = [item for name, url in stores
                        for item in measure_gateway(name, url, folder, data, expected).items()]
        finally:
            moto.stop()
    print(f"{args.size_mb} MiB file through the {args.via} (peak = VmHWM of each process)\n")
    print("| process | store | RSS before (MiB) | peak after upload (MiB) | peak after download (MiB) | growth (MiB) "
          "| upload (s) | download (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for process, row in rows:
        growth = row["peak_after_download_mb"] - row["rss_before_mb"]
        print(f"| {process} | {row['store']} | {row['rss_before_mb']:.0f} | {row['peak_after_upload_mb']:.0f} | "
              f"{row['peak_after_download_mb']:.0f} | {growth:.0f} | {row['upload_s']:.1f} | {row['download_s']:.1f} |")


if __name__ == "__main__":
    main()
