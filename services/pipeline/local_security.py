"""Security for the local cluster (``distillery up --secure``): a private CA, one server
certificate for every local service (names ``localhost`` and ``127.0.0.1``), a client
certificate for mutual TLS, and a bearer token, written once under ``<home>/tls`` (keys 0600).

The services get them as the ``DISTILLERY_*`` variables that a Kubernetes deployment sets from
Secrets, so the local cluster runs exactly the configuration a cluster does. Later CLI commands
on the same home read ``<home>/tls/client.env`` and dial with TLS and the token without any
``export``. Certificates are made with ``cryptography`` (the well-kept X.509 library the Python
ecosystem uses), not by shelling out to openssl."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from pathlib import Path

from services.common.atomic import write_bytes_atomic

SECURE_FILE = "client.env"
_DAYS = 825


def _write(path: Path, data: bytes, private: bool = False) -> None:
    write_bytes_atomic(path, data, 0o600 if private else 0o644)


def _key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool,  # type: ignore[no-untyped-def]
                 server: bool = False, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def ensure_local_security(home: Path) -> dict[str, str]:
    """The variables that turn TLS (mutual) and the token on, creating the files on first use."""
    from cryptography.hazmat.primitives import serialization

    directory = home / "tls"
    env_file = directory / SECURE_FILE
    if env_file.is_file():
        return {**read_env_file(env_file), **_server_env(directory)}
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_cert = _certificate("Distillery local CA", ca_key, None, None, ca=True)
    server_key, client_key = _key(), _key()
    server_cert = _certificate("distillery-local", server_key, ca_cert.subject, ca_key, ca=False, server=True)
    client_cert = _certificate("distillery-client", client_key, ca_cert.subject, ca_key, ca=False, client=True)
    pem = serialization.Encoding.PEM
    _write(directory / "ca.pem", ca_cert.public_bytes(pem))
    _write(directory / "server.pem", server_cert.public_bytes(pem))
    _write(directory / "server.key", _pem_key(server_key), private=True)
    _write(directory / "client.pem", client_cert.public_bytes(pem))
    _write(directory / "client.key", _pem_key(client_key), private=True)
    client = {"DISTILLERY_AUTH_TOKEN": secrets.token_urlsafe(32),
              "DISTILLERY_TLS_CA": str(directory / "ca.pem"),
              "DISTILLERY_TLS_CLIENT_CERT": str(directory / "client.pem"),
              "DISTILLERY_TLS_CLIENT_KEY": str(directory / "client.key")}
    # Written last: its presence means the set is complete.
    _write(env_file, "".join(f"{k}={v}\n" for k, v in client.items()).encode(), private=True)
    return {**client, **_server_env(directory)}


def _server_env(directory: Path) -> dict[str, str]:
    return {"DISTILLERY_TLS_CERT": str(directory / "server.pem"), "DISTILLERY_TLS_KEY": str(directory / "server.key"),
            "DISTILLERY_TLS_CLIENT_AUTH": "require"}


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def client_env(home: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the local cluster's client settings when ``distillery up --secure`` made
    them and the caller set none of its own."""
    env_file = home / "tls" / SECURE_FILE
    if not env_file.is_file() or any(env.get(k) for k in ("DISTILLERY_AUTH_TOKEN", "DISTILLERY_TLS_CA")):
        return env
    return {**env, **read_env_file(env_file)}
