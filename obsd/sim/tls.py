"""A throw-away CA and loopback server certificate, made with the `openssl` command."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Long enough for any test run, short enough that a leaked file is useless soon.
VALID_DAYS: Final = "2"
_EC_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
# Strict verifiers (Python >= 3.13) want these extensions on both certificates.
_SERVER_EXTENSIONS: Final = """\
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
# openssl takes well under a second; a hung one must not hang the caller.
_OPENSSL_TIMEOUT_S: Final = 30.0


class TlsUnavailable(RuntimeError):
    """The test certificate could not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class LoopbackCertificate:
    """Files of one run: clients trust `ca`; the server presents `cert` with `key`."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def _openssl(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(
            ["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT_S
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise TlsUnavailable(f"openssl {args[0]} failed: {detail}") from None
    except subprocess.TimeoutExpired:
        raise TlsUnavailable(f"openssl {args[0]} did not finish") from None


def make_test_certificate(directory: Path) -> LoopbackCertificate:
    """Write a CA and a certificate for 127.0.0.1, ::1 and localhost into `directory`."""
    if shutil.which("openssl") is None:
        raise TlsUnavailable(
            "TLS needs the `openssl` command-line tool; install it "
            "(e.g. apt-get install openssl) or run the simulator without TLS"
        )
    (directory / "server.ext").write_text(_SERVER_EXTENSIONS)
    _openssl(
        "req",
        "-x509",
        *_EC_KEY,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        VALID_DAYS,
        "-subj",
        "/CN=obsd simulator test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    _openssl(
        "req",
        *_EC_KEY,
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
        cwd=directory,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "1",
        "-days",
        VALID_DAYS,
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
        cwd=directory,
    )
    return LoopbackCertificate(
        directory / "ca.pem", directory / "server.pem", directory / "server.key"
    )
