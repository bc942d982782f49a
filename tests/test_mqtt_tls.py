"""The MQTT client seam over TLS and with a login, against a real Mosquitto.

Certificates come from a throwaway CA made once a session with ``openssl``;
every broker listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from tvpower.errors import BrokerError, UsageError
from tvpower.mqtt import (
    BrokerAddress,
    MqttPublisher,
    TlsOptions,
    default_client_id,
    parse_broker_url,
)

from .conftest import Mosquitto, TlsCertificates, unique_topic

StartMosquitto = Callable[..., Mosquitto]

# Far below the publisher's 10 s timeout: a failure must not wait it out.
_FAIL_FAST_SECONDS = 3.0


def _publisher(
    url: str,
    tls: TlsOptions | None,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
) -> MqttPublisher:
    return MqttPublisher(
        parse_broker_url(url),
        client_id=default_client_id(),
        username=username,
        password=password,
        timeout=timeout,
        tls=tls,
    )


def _start_tls_broker(
    start_mosquitto: StartMosquitto,
    certificates: TlsCertificates,
    *extra_config: str,
    require_certificate: bool = False,
    elsewhere: bool = False,
) -> str:
    """Start a Mosquitto whose only listener speaks TLS; return its URL."""
    broker = start_mosquitto(
        [
            *certificates.listener_config(
                require_certificate=require_certificate, elsewhere=elsewhere
            ),
            *(extra_config or ["allow_anonymous true"]),
        ]
    )
    return f"mqtts://{broker.host}:{broker.port}"


def _trusting_ca(certificates: TlsCertificates) -> TlsOptions:
    return TlsOptions(ca_file=certificates.ca_cert, cert_file=None, key_file=None)


def _with_client_certificate(certificates: TlsCertificates) -> TlsOptions:
    return TlsOptions(
        ca_file=certificates.ca_cert,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )


async def _retained_over_tls(
    url: str, topic: str, certificates: TlsCertificates
) -> bytes:
    """The retained payload of ``topic``, read by a fresh MQTT 5 subscriber."""
    context = ssl.create_default_context(cafile=certificates.ca_cert)
    context.load_cert_chain(certificates.client_cert, certificates.client_key)
    address = parse_broker_url(url)
    client = aiomqtt.Client(
        address.host,
        address.port,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        timeout=5,
    )
    async with client:
        await client.subscribe(topic, qos=1)
        message = await asyncio.wait_for(anext(client.messages), 5)
    assert message.retain
    assert isinstance(message.payload, bytes)
    return message.payload


async def test_mqtts_with_the_ca_file_speaks_mqtt_5(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates)
    topic = unique_topic()

    async with _publisher(url, _trusting_ca(tls_certificates)) as publisher:
        assert publisher.protocol == "5"
        await publisher.publish(topic, b"on", message_expiry_seconds=600)

    assert await _retained_over_tls(url, topic, tls_certificates) == b"on"


async def test_mqtts_without_the_ca_file_fails_the_handshake(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates)
    address = parse_broker_url(url)

    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, tls=None):
            pass

    # The system's CAs do not know the test CA; OpenSSL's wording of why
    # varies between versions.
    message = str(raised.value)
    assert message.startswith(
        f"TLS handshake with broker {address} failed: certificate verify failed: "
    )
    assert "\n" not in message
    assert "_ssl.c" not in message
    assert time.monotonic() - began < _FAIL_FAST_SECONDS


async def test_host_name_is_verified(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates, elsewhere=True)
    address = parse_broker_url(url)

    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, _trusting_ca(tls_certificates)):
            pass

    assert str(raised.value) == (
        f"TLS handshake with broker {address} failed: certificate verify failed: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'."
    )


async def test_insecure_skips_only_the_host_name_check(
    start_mosquitto: StartMosquitto,
    tls_certificates: TlsCertificates,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates, elsewhere=True)
    address = parse_broker_url(url)
    insecure = TlsOptions(tls_certificates.ca_cert, None, None, insecure=True)
    insecure_without_ca = TlsOptions(None, None, None, insecure=True)

    async with _publisher(url, insecure) as publisher:
        await publisher.publish(unique_topic(), b"on", message_expiry_seconds=60)
    with pytest.raises(BrokerError, match="certificate verify failed"):
        async with _publisher(url, insecure_without_ca):
            pass

    assert (
        "tvpower.mqtt",
        logging.WARNING,
        f"broker {address}: host name verification is off (insecure); "
        "any certificate from a trusted CA passes as the broker's",
    ) in caplog.record_tuples


async def test_mutual_tls_accepts_the_client_certificate(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates, require_certificate=True)
    topic = unique_topic()

    async with _publisher(url, _with_client_certificate(tls_certificates)) as publisher:
        await publisher.publish(topic, b"off", message_expiry_seconds=None)

    assert await _retained_over_tls(url, topic, tls_certificates) == b"off"


async def test_mutual_tls_without_a_client_certificate_fails_at_once(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    url = _start_tls_broker(start_mosquitto, tls_certificates, require_certificate=True)
    address = parse_broker_url(url)

    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, _trusting_ca(tls_certificates)):
            pass

    # With TLS 1.3 the broker's alert arrives after the handshake, while
    # the client waits for its CONNACK.
    assert str(raised.value) == (
        f"broker {address} closed the connection before CONNACK: "
        "failed to receive on socket: tlsv13 alert certificate required"
    )
    assert time.monotonic() - began < _FAIL_FAST_SECONDS


async def test_mqtt_to_a_tls_listener_fails_at_once(
    start_mosquitto: StartMosquitto, tls_certificates: TlsCertificates
) -> None:
    address = parse_broker_url(_start_tls_broker(start_mosquitto, tls_certificates))
    url = f"mqtt://{address}"

    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, tls=None):
            pass

    # Mosquitto takes the CONNECT for a bad TLS record and resets the
    # connection, or just closes it.
    message = str(raised.value)
    assert message.startswith(f"broker {address} closed the connection before CONNACK")
    assert "\n" not in message
    assert time.monotonic() - began < _FAIL_FAST_SECONDS


async def test_mqtts_to_a_plain_listener_fails_at_once(
    mosquitto_broker: Mosquitto, tls_certificates: TlsCertificates
) -> None:
    url = f"mqtts://{mosquitto_broker.host}:{mosquitto_broker.port}"
    address = parse_broker_url(url)

    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, _trusting_ca(tls_certificates)):
            pass

    # Mosquitto takes the ClientHello for a bad MQTT packet and resets the
    # connection (or, were it to read it all first, closes it: a TLS error).
    assert re.fullmatch(
        rf"(cannot connect to broker {address}|TLS handshake with broker {address} "
        r"failed): [^\n]+",
        str(raised.value),
    )
    assert time.monotonic() - began < _FAIL_FAST_SECONDS


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that completes TCP connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("scheme", ["mqtt", "mqtts"])
async def test_a_silent_broker_times_out_with_a_clear_message(
    silent_port: int, scheme: str
) -> None:
    # No TLS options: waiting for the handshake fails before any CA matters.
    url = f"{scheme}://127.0.0.1:{silent_port}"

    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(url, tls=None, timeout=0.5):
            pass

    assert str(raised.value) == (
        f"cannot connect to broker 127.0.0.1:{silent_port}: no answer within 0.5 s"
    )
    assert time.monotonic() - began < _FAIL_FAST_SECONDS


def _capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # aiomqtt, and paho through it, log to "mqtt", which has a level of its own.
    caplog.set_level(logging.DEBUG, logger="mqtt")


@pytest.fixture
def password_file(tmp_path: Path) -> tuple[Path, str, str]:
    """A Mosquitto password file with one user; returns it, the user, the password."""
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed: apt-get install mosquitto")
    path = tmp_path / "passwords"
    username, password = "tv-publisher", f"pw-{secrets.token_hex(8)}"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), username, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path, username, password


async def test_username_and_password_are_accepted(
    start_mosquitto: StartMosquitto,
    tls_certificates: TlsCertificates,
    password_file: tuple[Path, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, username, password = password_file
    url = _start_tls_broker(
        start_mosquitto,
        tls_certificates,
        "allow_anonymous false",
        f"password_file {path}",
    )
    _capture_all_logs(caplog)

    publisher = _publisher(
        url, _trusting_ca(tls_certificates), username=username, password=password
    )
    async with publisher:
        await publisher.publish(unique_topic(), b"on", message_expiry_seconds=60)

    assert password not in repr(publisher)
    assert password not in caplog.text


async def test_refused_login_never_shows_the_password(
    start_mosquitto: StartMosquitto,
    tls_certificates: TlsCertificates,
    password_file: tuple[Path, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, username, password = password_file
    url = _start_tls_broker(
        start_mosquitto,
        tls_certificates,
        "allow_anonymous false",
        f"password_file {path}",
    )
    wrong_password = f"{password}-wrong"
    _capture_all_logs(caplog)

    publisher = _publisher(
        url, _trusting_ca(tls_certificates), username=username, password=wrong_password
    )
    with pytest.raises(BrokerError) as raised:
        async with publisher:
            pass

    assert str(raised.value) == (
        f"broker {parse_broker_url(url)} refused the connection: "
        "CONNACK reason_code 0x87 Not authorized"
    )
    shown = [
        "".join(traceback.format_exception(raised.value)),
        repr(raised.value),
        repr(publisher),
        caplog.text,
    ]
    for text in shown:
        assert wrong_password not in text
        assert password not in text
    # The log did record the attempt, so the check above saw something.
    assert "CONNECT" in caplog.text


def test_password_without_username_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as raised:
        _publisher("mqtt://127.0.0.1:1883", tls=None, password="secret-value")

    assert str(raised.value) == "password: expected a username with it, got none"
    assert "secret-value" not in repr(raised.value)


def test_missing_ca_file_is_a_usage_error_before_any_connection(
    tmp_path: Path, free_port: int
) -> None:
    missing = tmp_path / "missing-ca.pem"

    # Constructing is enough: nothing listens on free_port, and nothing tries.
    with pytest.raises(UsageError) as raised:
        _publisher(f"mqtts://127.0.0.1:{free_port}", TlsOptions(missing, None, None))

    assert str(raised.value) == (
        f"ca_file: cannot read {missing}: No such file or directory"
    )


_Case = Callable[[TlsCertificates, Path], tuple[TlsOptions, str]]


def _ca_file_is_a_directory(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(tmp, None, None),
        f"ca_file: cannot read {tmp}: Is a directory",
    )


def _ca_file_holds_no_certificate(
    c: TlsCertificates, tmp: Path
) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.client_key, None, None),
        f"ca_file: expected PEM certificates in {c.client_key}, found none",
    )


def _cert_file_missing(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    missing = tmp / "missing.crt"
    return (
        TlsOptions(c.ca_cert, missing, c.client_key),
        f"cert_file: cannot read {missing}: No such file or directory",
    )


def _key_file_missing(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    missing = tmp / "missing.key"
    return (
        TlsOptions(c.ca_cert, c.client_cert, missing),
        f"key_file: cannot read {missing}: No such file or directory",
    )


def _cert_file_holds_a_key(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, c.client_key, c.client_key),
        f"cert_file: expected a PEM certificate in {c.client_key}, found none",
    )


def _key_file_holds_a_certificate(
    c: TlsCertificates, tmp: Path
) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, c.client_cert, c.ca_cert),
        f"key_file: expected a PEM private key in {c.ca_cert}, found none",
    )


def _cert_file_without_key(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, c.client_cert, None),
        f"cert_file: expected a PEM private key in {c.client_cert}, found none",
    )


def _key_of_another_certificate(
    c: TlsCertificates, tmp: Path
) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, c.client_cert, c.server_key),
        f"key_file: the private key in {c.server_key} "
        f"does not match the certificate in {c.client_cert}",
    )


def _encrypted_key(c: TlsCertificates, tmp: Path) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, c.client_cert, c.client_key_encrypted),
        f"key_file: the private key in {c.client_key_encrypted} is encrypted; "
        "expected an unencrypted key",
    )


def _key_file_without_cert_file(
    c: TlsCertificates, tmp: Path
) -> tuple[TlsOptions, str]:
    return (
        TlsOptions(c.ca_cert, None, c.client_key),
        f"key_file: {c.client_key} given without a cert_file",
    )


@pytest.mark.parametrize(
    "case",
    [
        _ca_file_is_a_directory,
        _ca_file_holds_no_certificate,
        _cert_file_missing,
        _key_file_missing,
        _cert_file_holds_a_key,
        _key_file_holds_a_certificate,
        _cert_file_without_key,
        _key_of_another_certificate,
        _encrypted_key,
        _key_file_without_cert_file,
    ],
    ids=lambda case: case.__name__.strip("_"),
)
def test_unusable_tls_files_are_usage_errors_at_construction(
    case: _Case, tls_certificates: TlsCertificates, tmp_path: Path
) -> None:
    options, message = case(tls_certificates, tmp_path)

    with pytest.raises(UsageError) as raised:
        _publisher("mqtts://127.0.0.1:8883", options)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (TlsOptions(Path("ca.pem"), None, None), "ca_file"),
        (TlsOptions(None, Path("client.crt"), Path("client.key")), "cert_file"),
        (TlsOptions(None, None, None, insecure=True), "insecure"),
    ],
)
def test_tls_options_need_an_mqtts_url(options: TlsOptions, option: str) -> None:
    with pytest.raises(UsageError) as raised:
        MqttPublisher(BrokerAddress("127.0.0.1", 1883), client_id="tv", tls=options)

    assert str(raised.value) == (
        f"{option}: expected an mqtts:// broker URL, got mqtt://127.0.0.1:1883"
    )


def test_tls_options_left_empty_are_fine_without_tls() -> None:
    MqttPublisher(
        BrokerAddress("127.0.0.1", 1883),
        client_id="tv",
        tls=TlsOptions(None, None, None),
    )
