"""TLS on every connection: the services' gRPC ports (and mutual TLS), the gateway's HTTPS and
its own calls to the services, with a throwaway CA and certificates made for each test run."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from suggestion_service.server import serve as serve_suggestion
from tracking_service.server import serve as serve_tracking
from trial_worker import Float, SuggestionClient
from trial_worker.tracking import TrackingClient
from tuning_common.errors import InvalidArgument, Unavailable
from tuning_common.grpc_server import ServerOptions
from tuning_common.tls import ServerTLS


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, key, certificate: x509.Certificate) -> tuple[str, str]:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class CA:
    """A throwaway certificate authority that signs server and client certificates."""

    def __init__(self, folder: Path, name: str = "tuning test CA"):
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.path, _ = _write(folder, name.replace(" ", "-"), self.key, self.certificate)

    def issue(self, stem: str, *, server: bool) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(_name(stem)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                  else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return _write(self.folder, stem, key, builder.sign(self.key, hashes.SHA256()))


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path)


def other_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "other"
    folder.mkdir(exist_ok=True)
    return folder


def use_tls(monkeypatch, ca_path: str, client: tuple[str, str] | None = None) -> None:
    monkeypatch.setenv("TUNING_TLS_CA", ca_path)
    if client:
        monkeypatch.setenv("TUNING_TLS_CLIENT_CERT", client[0])
        monkeypatch.setenv("TUNING_TLS_CLIENT_KEY", client[1])


def ask_once(address: str, name: str) -> None:
    with SuggestionClient(address, retries=0, timeout=5) as client:
        study = client.create_study(name, [Float("x", 0, 1)], objectives={"loss": "minimize"})
        study.tell(study.ask(), 0.5)


def test_services_speak_tls_to_clients_that_trust_their_ca(ca: CA, tmp_path: Path, monkeypatch):
    cert, key = ca.issue("server", server=True)
    running = serve_suggestion(f"sqlite:///{tmp_path / 's.db'}", ServerOptions(tls=ServerTLS.from_files(cert, key)))
    try:
        # A plain-gRPC client cannot talk to it.
        monkeypatch.delenv("TUNING_TLS_CA", raising=False)
        with pytest.raises(Unavailable):
            ask_once(running.address, "plain")
        # Nor one that trusts another CA.
        use_tls(monkeypatch, CA(other_folder(tmp_path), "another CA").path)
        with pytest.raises(Unavailable):
            ask_once(running.address, "stranger")
        # One that trusts the server's CA can, by IP address or by the name in the certificate.
        use_tls(monkeypatch, ca.path)
        ask_once(running.address, "trusted")
        monkeypatch.setenv("TUNING_TLS_SERVER_NAME", "localhost")
        ask_once(running.address, "by-name")
    finally:
        running.stop()


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(ca: CA, tmp_path: Path, monkeypatch):
    cert, key = ca.issue("server", server=True)
    tls = ServerTLS.from_files(cert, key, ca.path)
    running = serve_tracking(f"sqlite:///{tmp_path / 't.db'}", str(tmp_path / "artifacts"), ServerOptions(tls=tls))
    try:
        use_tls(monkeypatch, ca.path)
        with pytest.raises(Unavailable), TrackingClient(running.address, retries=0, timeout=5) as client:
            client.get_or_create_experiment("no-certificate")
        other = CA(other_folder(tmp_path), "rogue CA")
        use_tls(monkeypatch, ca.path, other.issue("rogue-worker", server=False))
        with pytest.raises(Unavailable), TrackingClient(running.address, retries=0, timeout=5) as client:
            client.get_or_create_experiment("rogue")
        use_tls(monkeypatch, ca.path, ca.issue("worker", server=False))
        with TrackingClient(running.address, retries=0, timeout=5) as client:
            assert client.get_or_create_experiment("admitted").name == "admitted"
    finally:
        running.stop()


def test_the_gateway_serves_https_and_calls_tls_services(ca: CA, tmp_path: Path, monkeypatch):
    from gateway.server import GatewayOptions
    from gateway.server import serve as serve_gateway

    cert, key = ca.issue("server", server=True)
    tls = ServerTLS.from_files(cert, key, ca.path)
    suggestion = serve_suggestion(f"sqlite:///{tmp_path / 's.db'}", ServerOptions(tls=tls))
    tracking = serve_tracking(f"sqlite:///{tmp_path / 't.db'}", str(tmp_path / "a"), ServerOptions(tls=tls))
    use_tls(monkeypatch, ca.path, ca.issue("gateway-client", server=False))
    gateway = serve_gateway(GatewayOptions(suggestion_address=suggestion.address, tracking_address=tracking.address,
                                           tls_cert=cert, tls_key=key))
    try:
        assert gateway.url.startswith("https://")
        ask_once(suggestion.address, "through-tls")
        with httpx.Client(verify=ssl.create_default_context(cafile=ca.path), timeout=10) as http:
            answer = http.get(f"{gateway.url}/v1/studies/through-tls")
            assert answer.status_code == 200 and answer.json()["study"]["name"] == "through-tls"
            assert http.get(f"{gateway.url}/v1/experiments/0").status_code in (200, 404)
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=10) as untrusting:
            untrusting.get(f"{gateway.url}/v1/openapi.json")  # the system's CAs do not know ours
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"http://{gateway.address}/v1/openapi.json", timeout=10)  # plain HTTP on the TLS port
    finally:
        gateway.stop()
        suggestion.stop()
        tracking.stop()


def test_half_a_tls_configuration_is_refused_by_name(ca: CA, tmp_path: Path, monkeypatch):
    cert, key = ca.issue("server", server=True)
    with pytest.raises(InvalidArgument) as error:
        ServerTLS.from_files(cert, None)
    assert error.value.field == "tls_key"
    with pytest.raises(InvalidArgument) as error:
        ServerTLS.from_files(None, None, ca.path)
    assert error.value.field == "tls_client_ca"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(InvalidArgument) as error:
        ServerTLS.from_files(str(not_pem), key)
    assert error.value.field == "tls_cert" and "not a PEM file" in error.value.description
    monkeypatch.setenv("TUNING_TLS_CLIENT_CERT", cert)
    monkeypatch.delenv("TUNING_TLS_CA", raising=False)
    with pytest.raises(InvalidArgument) as error:
        SuggestionClient("127.0.0.1:1")
    assert error.value.field == "TUNING_TLS_CA"
