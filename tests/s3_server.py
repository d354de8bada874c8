"""A real S3 API server for the tests: moto's server (the one MLflow's own tests use) in a process of its own.

Its own process, so that memory measured in the test process (tracemalloc) is the store's alone, and so that
the server sees real HTTP from boto3 like AWS, MinIO or Ceph would. It listens on a port the OS chooses, on
127.0.0.1 unless told otherwise; ``spawn`` starts it elsewhere (in a network namespace: tests/netns.py's
``Star.spawn``), and ``buckets`` are created by the server's own process (the test process may not reach it).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

# Started by the child: ThreadedMotoServer on port 0, its address on stdout, and it stops when stdin closes.
_SERVE = """
import sys
import boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address=sys.argv[1], port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                      aws_access_key_id="test-key", aws_secret_access_key="test-secret")
for bucket in sys.argv[2:]:
    client.create_bucket(Bucket=bucket)
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()
server.stop()
"""


class MotoServer:
    def __init__(self, ip_address: str = "127.0.0.1", *, buckets: Sequence[str] = (),
                 spawn: Callable[..., subprocess.Popen] = subprocess.Popen) -> None:
        self.proc = spawn([sys.executable, "-c", _SERVE, ip_address, *buckets], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"moto server did not start (exit {self.proc.wait()})")

    def environment(self, folder: Path) -> dict[str, str]:
        """The standard AWS settings pointing at this server, and away from any real account's files."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials"),
        }

    def new_bucket(self) -> str:
        import boto3

        name = f"test-{uuid.uuid4().hex}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test-key",
                     aws_secret_access_key="test-secret").create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
