"""Shared fixtures: loopback ports, the embedded broker, a real Mosquitto.

Every broker here listens on 127.0.0.1 only. :func:`collect_retained` reads
what a broker retains, the way a fresh TV client would see it.
:func:`tls_certificates` makes a throwaway CA and certificates for TLS tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt
import pytest
from hypothesis import settings

from tvpower.broker import EmbeddedBroker

# Tests are never timed: these machines are shared and noisy, so a slow
# example is not a failure.
settings.register_profile("tvpower", deadline=None)
settings.load_profile("tvpower")

# amqtt logs every connection, session and refused MQTT 5 CONNECT at INFO and
# WARNING, and transitions logs each of its state changes at INFO.
logging.getLogger("amqtt").setLevel(logging.ERROR)
logging.getLogger("transitions").setLevel(logging.WARNING)

MOSQUITTO_MISSING = "mosquitto not installed: apt-get install mosquitto"
_MOSQUITTO_START_SECONDS = 5.0
_MOSQUITTO_ATTEMPTS = 3
OPENSSL_MISSING = "openssl not installed: apt-get install openssl"
_OPENSSL_SECONDS = 30.0
# The extensions each certificate gets; nothing from the system's openssl.cnf.
_OPENSSL_CONFIG = """\
[req]
distinguished_name = subject
prompt = no
[subject]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[elsewhere]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:elsewhere.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Mosquitto:
    """A running Mosquitto: the same ``host``, ``port``, ``url`` as EmbeddedBroker."""

    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsCertificates:
    """PEM files of a throwaway CA and of the certificates it signed.

    ``server`` names 127.0.0.1 and localhost, ``elsewhere`` only
    elsewhere.invalid; ``client`` is for mutual TLS. Keys are unencrypted
    but ``client_key_encrypted``, whose passphrase is ``tvpower``.
    """

    ca_cert: Path
    server_cert: Path
    server_key: Path
    elsewhere_cert: Path
    elsewhere_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path

    def listener_config(
        self, *, require_certificate: bool = False, elsewhere: bool = False
    ) -> list[str]:
        """Mosquitto lines that make the listener before them a TLS one."""
        cert, key = (
            (self.elsewhere_cert, self.elsewhere_key)
            if elsewhere
            else (self.server_cert, self.server_key)
        )
        return [
            f"cafile {self.ca_cert}",
            f"certfile {cert}",
            f"keyfile {key}",
            f"require_certificate {str(require_certificate).lower()}",
        ]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_loopback_port()


@pytest.fixture
async def embedded_broker(free_port: int) -> AsyncIterator[EmbeddedBroker]:
    """A running embedded (amqtt) broker on 127.0.0.1."""
    async with EmbeddedBroker("127.0.0.1", free_port) as broker:
        yield broker


@pytest.fixture
def start_mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start Mosquitto brokers with extra config lines; all stop at teardown.

    Skips the test when the ``mosquitto`` binary is not installed.
    """
    if shutil.which("mosquitto") is None:
        pytest.skip(MOSQUITTO_MISSING)
    processes: list[subprocess.Popen[bytes]] = []

    def start(extra_config: Iterable[str] = ("allow_anonymous true",)) -> Mosquitto:
        lines = list(extra_config)
        for _attempt in range(_MOSQUITTO_ATTEMPTS):
            # The free port may be taken before Mosquitto binds it: retry.
            broker, process = _spawn_mosquitto(tmp_path, lines)
            processes.append(process)
            if _wait_until_listening(broker, process):
                return broker
        pytest.fail(f"mosquitto did not start; see {broker.log}")

    yield start
    for process in processes:
        _terminate(process)


@pytest.fixture
def mosquitto_broker(start_mosquitto: Callable[..., Mosquitto]) -> Mosquitto:
    """A running Mosquitto on 127.0.0.1: anonymous access, no persistence."""
    return start_mosquitto()


def _spawn_mosquitto(
    directory: Path, extra_config: list[str]
) -> tuple[Mosquitto, subprocess.Popen[bytes]]:
    port = _free_loopback_port()
    name = f"mosquitto-{port}"
    log = directory / f"{name}.log"
    config = directory / f"{name}.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "persistence false",
        f"log_dest file {log}",
        *extra_config,
    ]
    if os.geteuid() == 0:
        # Started as root, Mosquitto switches to the "mosquitto" user, which
        # cannot read this test's private temp files (ACLs, the log).
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Mosquitto("127.0.0.1", port, log), process


def _wait_until_listening(broker: Mosquitto, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _MOSQUITTO_START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((broker.host, broker.port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    _terminate(process)
    return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificates:
    """A CA, server and client certificates made by ``openssl``, once a session.

    Skips the test when the ``openssl`` binary is not installed.
    """
    if shutil.which("openssl") is None:
        pytest.skip(OPENSSL_MISSING)
    directory = tmp_path_factory.mktemp("pki")
    config = directory / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)

    _openssl(directory, *_new_key("ca.key"))
    _openssl(
        directory,
        *("req", "-config", config, "-new", "-x509", "-key", "ca.key"),
        *("-subj", "/CN=tvpower test CA", "-days", "2", "-extensions", "ca"),
        *("-out", "ca.crt"),
    )
    for name in ("server", "elsewhere", "client"):
        _openssl(directory, *_new_key(f"{name}.key"))
        _openssl(
            directory,
            *("req", "-config", config, "-new", "-key", f"{name}.key"),
            *("-subj", f"/CN=tvpower test {name}", "-out", f"{name}.csr"),
        )
        _openssl(
            directory,
            *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt"),
            *("-CAkey", "ca.key", "-set_serial", f"0x{secrets.token_hex(8)}"),
            *("-days", "2", "-extfile", config, "-extensions", name),
            *("-out", f"{name}.crt"),
        )
    _openssl(
        directory,
        *("pkey", "-in", "client.key", "-aes256", "-passout", "pass:tvpower"),
        *("-out", "client-encrypted.key"),
    )
    return TlsCertificates(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        elsewhere_cert=directory / "elsewhere.crt",
        elsewhere_key=directory / "elsewhere.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        client_key_encrypted=directory / "client-encrypted.key",
    )


def _new_key(name: str) -> tuple[str, ...]:
    return (
        *("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
        *("-out", name),
    )


def _openssl(directory: Path, *arguments: str | Path) -> None:
    try:
        subprocess.run(
            ["openssl", *map(str, arguments)],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=_OPENSSL_SECONDS,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"openssl {arguments[0]} failed: {exc.stderr.decode()}")


async def collect_retained(
    url_or_port: str | int,
    topic_filter: str,
    *,
    # One budget for connecting, subscribing and listening, which
    # asyncio.timeout around the call could not split into a quiet period.
    timeout: float = 5.0,  # noqa: ASYNC109
    quiet: float = 0.5,
) -> dict[str, bytes]:
    """What a fresh subscriber to ``topic_filter`` receives as retained.

    Connects a new MQTT 3.1.1 client, subscribes at QoS 1 and collects
    retained messages until none arrived for ``quiet`` seconds, or until
    ``timeout``. Only topics that match the filter count: amqtt also sends a
    new connection the retained messages of other sessions' subscriptions.
    """
    host, port = _host_port(url_or_port)
    retained: dict[str, bytes] = {}
    identifier = f"collector-{secrets.token_hex(4)}"
    client = aiomqtt.Client(host, port, identifier=identifier, timeout=timeout)
    async with client:
        await client.subscribe(topic_filter, qos=1)
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await asyncio.wait_for(
                    anext(client.messages), min(quiet, left)
                )
            except TimeoutError:
                break
            if message.retain and message.topic.matches(topic_filter):
                assert isinstance(message.payload, bytes)
                retained[message.topic.value] = message.payload
    return retained


def _host_port(url_or_port: str | int) -> tuple[str, int]:
    if isinstance(url_or_port, int):
        return "127.0.0.1", url_or_port
    parts = urlsplit(url_or_port)
    assert parts.hostname is not None, url_or_port
    assert parts.port is not None, url_or_port
    return parts.hostname, parts.port


def unique_topic(prefix: str = "tvpower-test") -> str:
    """A topic no other test uses, so retained messages never mix."""
    return f"{prefix}/{secrets.token_hex(6)}"
