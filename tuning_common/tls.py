"""TLS for every connection of the suite: the services' gRPC ports, the gateway's HTTPS, and the
clients (workers, the Tuner, the CLI, the gateway itself), with mutual TLS as an option.

Servers take ``--tls-cert`` and ``--tls-key`` (``$TUNING_TLS_CERT``, ``$TUNING_TLS_KEY``): PEM
files of their certificate chain and private key. ``--tls-client-ca`` (``$TUNING_TLS_CLIENT_CA``)
also requires every client to present a certificate signed by that CA (mutual TLS).

Clients use TLS when ``$TUNING_TLS_CA`` names the CA (PEM) that signed the servers'
certificates; ``$TUNING_TLS_CLIENT_CERT`` and ``$TUNING_TLS_CLIENT_KEY`` are their own
certificate and key for mutual TLS, and ``$TUNING_TLS_SERVER_NAME`` the name to check the
server's certificate against when the address is not that name (an IP address, a tunnel).
Without ``$TUNING_TLS_CA`` clients speak plain gRPC, as before.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from tuning_common.errors import InvalidArgument
from tuning_common.settings import add_option

CA_ENV = "TUNING_TLS_CA"
CLIENT_CERT_ENV = "TUNING_TLS_CLIENT_CERT"
CLIENT_KEY_ENV = "TUNING_TLS_CLIENT_KEY"
SERVER_NAME_ENV = "TUNING_TLS_SERVER_NAME"


def add_tls_options(parser: argparse.ArgumentParser, *, mutual: bool) -> None:
    """--tls-cert and --tls-key, and with ``mutual`` --tls-client-ca (the gRPC services')."""
    add_option(parser, "--tls-cert", env="TUNING_TLS_CERT", default=None,
               help="serve TLS with this certificate chain (PEM); clients then need $TUNING_TLS_CA")
    add_option(parser, "--tls-key", env="TUNING_TLS_KEY", default=None, help="the certificate's private key (PEM)")
    if mutual:
        add_option(parser, "--tls-client-ca", env="TUNING_TLS_CLIENT_CA", default=None,
                   help="mutual TLS: accept only clients with a certificate signed by this CA (PEM)")


def _read(path: str | os.PathLike, field: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InvalidArgument(field, f"cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN" not in data:
        raise InvalidArgument(field, f"{path} is not a PEM file")
    return data


@dataclass(frozen=True)
class ServerTLS:
    certificate_chain: bytes
    private_key: bytes
    # Set: clients must present a certificate signed by this CA (mutual TLS).
    client_ca: bytes | None = None

    @classmethod
    def from_files(cls, cert: str | None, key: str | None, client_ca: str | None = None) -> ServerTLS | None:
        """None when neither file is given; InvalidArgument naming the flag for half a pair or a bad file."""
        if not cert and not key:
            if client_ca:
                raise InvalidArgument("tls_client_ca", "mutual TLS needs the server's own --tls-cert and --tls-key")
            return None
        if not cert or not key:
            raise InvalidArgument("tls_cert" if not cert else "tls_key", "give both --tls-cert and --tls-key")
        return cls(_read(cert, "tls_cert"), _read(key, "tls_key"),
                   _read(client_ca, "tls_client_ca") if client_ca else None)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.private_key, self.certificate_chain)],
                                           root_certificates=self.client_ca,
                                           require_client_auth=self.client_ca is not None)


@dataclass(frozen=True)
class ClientTLS:
    ca: bytes
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_env(cls) -> ClientTLS | None:
        """The clients' TLS settings from ``$TUNING_TLS_*``; None for plain gRPC."""
        ca, cert, key = (os.environ.get(name) for name in (CA_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV))
        if not ca:
            if cert or key:
                raise InvalidArgument(CA_ENV, f"${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV} need ${CA_ENV} as well")
            return None
        if bool(cert) != bool(key):
            raise InvalidArgument(CLIENT_CERT_ENV if not cert else CLIENT_KEY_ENV,
                                  f"give both ${CLIENT_CERT_ENV} and ${CLIENT_KEY_ENV}")
        return cls(_read(ca, CA_ENV), _read(cert, CLIENT_CERT_ENV) if cert else None,
                   _read(key, CLIENT_KEY_ENV) if key else None, os.environ.get(SERVER_NAME_ENV) or None)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.private_key,
                                            certificate_chain=self.certificate_chain)

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


# grpc backs off reconnecting to a peer that went away for up to two minutes by default (1 s,
# then x1.6); clients of a service that restarts should notice it is back within seconds.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2_000))


def channel(address: str, options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to ``address``: TLS when ``$TUNING_TLS_CA`` is set, plain otherwise; ``options``
    come after :data:`RECONNECT_OPTIONS`, so they may override them."""
    options = [*RECONNECT_OPTIONS, *options]
    tls = ClientTLS.from_env()
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, tls.credentials(), options=[*options, *tls.options()])


def aio_channel(address: str, options: Sequence[tuple[str, object]] = (), interceptors=None) -> grpc.aio.Channel:
    """:func:`channel` for grpc.aio (the gateway's)."""
    options = [*RECONNECT_OPTIONS, *options]
    tls = ClientTLS.from_env()
    if tls is None:
        return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)
    return grpc.aio.secure_channel(address, tls.credentials(), options=[*options, *tls.options()],
                                   interceptors=interceptors)
