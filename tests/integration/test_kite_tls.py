"""A ``wss://`` Kite connection verifies the server: a loopback TLS WebSocket server with a
self-signed certificate for ``localhost``, and the real ``KiteTicker`` inside
:class:`LiveSource` (in a subprocess: twisted's reactor runs once per process).

kiteconnect's own ``connect`` uses twisted's ``ClientContextFactory``, which accepts any
certificate; the access token travels in the connection URL. The connection must fail
against certifi's authorities, fail when the certificate names another host, and carry
frames when the server's authority is given.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kiteconnect")
websockets = pytest.importorskip("websockets")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

FRAME = b"\x00\x01\x00\x08\x00\x04\x1a\x09\x00\x00\x27\x10"  # one LTP packet

CLIENT = """
import json, logging, sys, time
from vectorticks.live import KiteCredentials, LiveSource
logging.basicConfig(level=logging.WARNING)
source = LiveSource(KiteCredentials("key", "s3cret-token"), [256265], mode="ltp",
                    root=sys.argv[1], ca_file=sys.argv[2] or None,
                    reconnect_initial_delay=0.2)
source.start()
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    summary = source.summary()
    if summary["frames_received"] or summary["connection_errors"]:
        break
    time.sleep(0.05)
source.stop()
print(json.dumps(source.summary()))
"""


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` (its own authority) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "localhost.pem", directory / "localhost.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsServer:
    """A WebSocket server over TLS on a loopback port: each connection that completes the
    handshake gets one binary frame."""

    def __init__(self, cert: Path, key: Path):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.handshakes = 0
        self.port: int | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handler(self, ws: Any) -> None:
        self.handshakes += 1
        await ws.send(FRAME)
        await ws.wait_closed()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, ssl=self.context) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    def __enter__(self) -> TlsServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def connect(url: str, ca_file: Path | None) -> tuple[dict[str, Any], str]:
    """LiveSource's summary after its first frame or error, and what it logged."""
    done = subprocess.run([sys.executable, "-c", CLIENT, url, str(ca_file or "")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_an_unknown_authority_is_refused(certificate):
    with TlsServer(*certificate) as server:
        summary, logged = connect(f"wss://localhost:{server.port}", None)
        assert server.handshakes == 0
    assert summary["connection_errors"] >= 1
    assert summary["connects"] == 0 and summary["frames_received"] == 0
    assert "certificate verify failed" in logged
    assert "s3cret-token" not in logged


def test_a_certificate_for_another_host_is_refused(certificate):
    # Its authority is trusted, but it names localhost, not 127.0.0.1.
    with TlsServer(*certificate) as server:
        summary, logged = connect(f"wss://127.0.0.1:{server.port}", certificate[0])
        assert server.handshakes == 0
    assert summary["connection_errors"] >= 1
    assert summary["connects"] == 0 and summary["frames_received"] == 0
    assert "s3cret-token" not in logged


def test_a_trusted_certificate_carries_frames(certificate):
    with TlsServer(*certificate) as server:
        summary, _ = connect(f"wss://localhost:{server.port}", certificate[0])
        assert server.handshakes >= 1
    assert summary["connects"] >= 1 and summary["frames_received"] >= 1
    assert summary["bytes_received"] >= len(FRAME)


def test_a_missing_ca_file_is_a_config_error(tmp_path):
    from vectorticks.errors import ConfigError
    from vectorticks.live import KiteCredentials, LiveSource

    with pytest.raises(ConfigError, match="CA file not found"):
        LiveSource(KiteCredentials("key", "token"), [256265], ca_file=tmp_path / "none.pem")
