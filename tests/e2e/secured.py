"""Access control and S3 artifacts for the tests that run the suite across network namespaces.

The reliability tests (test_scale_out.py, test_chaos.py) run with bearer tokens required by every
service, roles on (--roles), and, for the tracking service, artifacts in an S3 bucket: moto's S3 API server runs inside the
services' namespace, on the services' address, where only the tracking service (and scripts run there)
reach it, as a bucket behind a private endpoint would be.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.test_multi_host import run_python
from tests.netns import Star
from tests.s3_server import MotoServer

# Run inside the services' namespace: whether a call without a token is refused, and how.
REFUSED_WITHOUT_TOKEN = """
import json, sys
from trial_worker import SuggestionClient
from tuning_common.errors import TuningError
with SuggestionClient(sys.argv[1], retries=0, token="") as client:
    try:
        list(client.list_studies())
        print(json.dumps("OK"))
    except TuningError as error:
        print(json.dumps(type(error).__name__))
"""


@dataclass
class Secured:
    token: str
    tokens_file: Path
    s3: MotoServer
    bucket: str
    # The standard AWS settings (tests/s3_server.py) for the tracking services.
    aws: dict[str, str]

    @property
    def service_args(self) -> list[str]:
        # Roles on as well: the workers' principal makes the study and the experiment, so it manages both.
        return ["--tokens-file", str(self.tokens_file), "--roles"]

    @property
    def client_env(self) -> dict[str, str]:
        return {"TUNING_TOKEN": self.token}

    def artifacts(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def refused_without_token(self, net: Star, suggestion_address: str) -> str:
        """The error a call without a token gets ("OK" if it was not refused)."""
        return run_python(net, net.svc, REFUSED_WITHOUT_TOKEN, suggestion_address)


@contextlib.contextmanager
def secured(net: Star, folder: Path) -> Iterator[Secured]:
    """A tokens file with one write token, and an S3 server with one bucket in ``net``'s services' namespace."""
    token = secrets.token_urlsafe(24)
    tokens_file = folder / "tokens"
    tokens_file.write_text(f"write {token} workers\n")
    bucket = f"reliability-{secrets.token_hex(6)}"
    s3 = MotoServer(net.service_address, buckets=[bucket],
                    spawn=lambda argv, **kwargs: net.spawn(net.svc, argv, **kwargs))
    try:
        yield Secured(token, tokens_file, s3, bucket, s3.environment(folder))
    finally:
        s3.stop()

