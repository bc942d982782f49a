"""The narrow client seam between the publisher and an MQTT broker.

:class:`MqttPublisher` connects with MQTT 5 and falls back to MQTT 3.1.1
when the broker refuses version 5 (amqtt, the embedded broker, speaks
3.1.1 only). It publishes retained at QoS 1 and returns only once the
broker's PUBACK arrived; on MQTT 5 a PUBACK with a failure reason_code
counts as a failure, and the Message Expiry Interval is set.

For ``mqtts://`` brokers it checks the broker's certificate against the
system's CAs or the ``ca_file`` of :class:`TlsOptions`, and the host name
in it, and can prove its own identity with a client certificate (mutual
TLS). The :class:`ssl.SSLContext` is built with the publisher, so a CA,
certificate or key file it cannot use is a :class:`UsageError` before any
connection is tried. The password never appears in a log record, a repr or
an error message.

It is built on aiomqtt for the connection, but sends PUBLISH packets through
aiomqtt's paho-mqtt client directly: aiomqtt 2.5 drops the PUBACK's
reason_code, and its per-publish timeout also runs while a burst waits in
paho's queue. Every broker failure is raised as :class:`BrokerError` with a
one-line message that names the broker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tvpower.errors import BrokerError, UsageError

#: One PUBLISH of a batch: topic, payload, Message Expiry Interval (or None).
Message = tuple[str, bytes, int | None]
#: What became of it: the error (None once acknowledged), and the seconds
#: from PUBLISH to PUBACK.
Delivery = tuple[BrokerError | None, float]

__all__ = [
    "BrokerAddress",
    "MqttPublisher",
    "TlsOptions",
    "default_client_id",
    "parse_broker_url",
]

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# CONNACK reason_code "Unsupported Protocol Version". A 3.1.1-only broker
# (amqtt) answers an MQTT 5 CONNECT with a 3.1.1 CONNACK, return code 0x01
# "unacceptable protocol version", and closes; paho, expecting MQTT 5,
# reports that CONNACK with this reason_code too.
_UNSUPPORTED_PROTOCOL_VERSION = 0x84
_DEFAULT_IN_FLIGHT = 64
# What OpenSSL wraps around its reasons: "[SSL: CODE] " before, " (_ssl.c:123)"
# after.
_OPENSSL_DECORATION = re.compile(r"\[[A-Z0-9_]+(?:: [A-Z0-9_]+)?\] | \(_ssl\.c:\d+\)")

_Callback = Callable[..., None]


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, and whether the connection uses TLS."""

    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class TlsOptions:
    """How to check an ``mqtts://`` broker, and how to prove who we are to it.

    ``ca_file`` holds the PEM certificates of the CAs to trust instead of
    the system's. ``cert_file`` is a PEM client certificate for mutual TLS,
    ``key_file`` its unencrypted private key (left out when ``cert_file``
    holds both). ``insecure`` stops checking that the broker's certificate
    names the host connected to. That is unsafe: anyone holding any
    certificate from a trusted CA can then pose as the broker. It is meant
    for lab setups only; the certificate chain is still verified.
    """

    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    insecure: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://host[:port]`` (port 1883) or ``mqtts://host[:port]`` (8883).

    Raises :class:`UsageError` naming the value for anything else.
    """
    expected_form = "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        raise UsageError(f"broker URL {url!r}: {expected_form}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise UsageError(f"broker URL {url!r}: {expected_form}")
    extras = parts.username is not None or parts.query or parts.fragment
    if extras or parts.path not in ("", "/"):
        raise UsageError(
            f"broker URL {url!r}: expected only a host and a port, "
            "without user, path or query"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UsageError(f"broker URL {url!r}: expected a port from 1 to 65535")
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
    )


def default_client_id() -> str:
    """A client id of this process's own: ``tvpower-<host>-<pid>-<6 hex>``.

    Two publishers with one client id knock each other off the broker, so
    every process gets its own, also two on one host.
    """
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
    return f"tvpower-{host}-{os.getpid()}-{secrets.token_hex(3)}"


class _ProtocolRefusedError(Exception):
    """The broker answered CONNECT with "Unsupported Protocol Version"."""


class _ClosedBeforeConnackError(aiomqtt.MqttError):
    """The broker closed the connection after CONNECT, without a CONNACK."""


class _EncryptedKeyError(Exception):
    """A private key needs a passphrase, and we have none to give."""


class MqttPublisher:
    """A connection that publishes retained QoS 1 messages, as a context manager.

    ``protocol`` is ``"5"`` or ``"3.1.1"`` once connected. Any number of
    :meth:`publish` calls may be awaited at once; at most ``max_in_flight``
    (or the broker's Receive Maximum, if lower) wait for their PUBACK at a
    time, and each waits at most ``timeout`` seconds for it, as connecting
    waits for the TCP connection, the TLS handshake and the CONNACK.

    ``tls`` applies to ``mqtts://`` addresses only. Raises
    :class:`UsageError` at once for a file in ``tls`` it cannot use, for
    TLS options with an ``mqtt://`` address, and for a password without a
    username.
    """

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_in_flight: int = _DEFAULT_IN_FLIGHT,
        tls: TlsOptions | None = None,
    ) -> None:
        if password is not None and username is None:
            # aiomqtt would drop the password silently.
            raise UsageError("password: expected a username with it, got none")
        self.address = address
        self.client_id = client_id
        self.protocol = ""
        self._keepalive = keepalive
        self._username = username
        self._password = password
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._client: aiomqtt.Client | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._window = max_in_flight
        # What to do with each PUBACK (or the error that replaces it).
        self._pubacks: dict[int, Callable[[ReasonCode | BrokerError], None]] = {}
        self._lost: BrokerError | None = None
        self.disconnected = asyncio.Event()
        self._properties: dict[int, Properties] = {}
        self._socket_error = ""
        self._tls_context = _tls_context_for(address, tls)

    @property
    def connected(self) -> bool:
        """Whether the connection is up (CONNACK received, not yet lost)."""
        return self._client is not None and self._lost is None

    async def __aenter__(self) -> Self:
        try:
            await self._connect(aiomqtt.ProtocolVersion.V5)
        except _ProtocolRefusedError:
            logger.info("broker %s refused MQTT 5; using MQTT 3.1.1", self.address)
            await self._connect(aiomqtt.ProtocolVersion.V311)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._fail_pending(BrokerError(f"connection to broker {self.address} closed"))
        _retrieve_lost_connection_error(client)
        try:
            await client.__aexit__(exc_type, exc, tb)
        except aiomqtt.MqttError as error:
            # The broker will notice the closed socket; nothing is lost.
            logger.debug(
                "DISCONNECT to broker %s not acknowledged: %s", self.address, error
            )

    async def publish(
        self, topic: str, payload: bytes, *, message_expiry_seconds: int | None
    ) -> None:
        """Publish ``payload`` retained at QoS 1; return once the PUBACK arrived.

        ``message_expiry_seconds`` becomes the Message Expiry Interval on
        MQTT 5 and is left out on MQTT 3.1.1, which has no such property.
        Raises :class:`BrokerError` when the connection is down or lost, no
        PUBACK arrives in time, or the PUBACK's reason_code is a failure.
        """
        if message_expiry_seconds is not None and message_expiry_seconds < 1:
            raise ValueError(
                "message_expiry_seconds: expected 1 or more, "
                f"got {message_expiry_seconds}"
            )
        # Each call costs a future, a timeout and a coroutine switch on top
        # of paho's own work: bursts go through publish_batch instead.
        async with self._slots:
            packet_id, puback = self._send(topic, payload, message_expiry_seconds)
            try:
                async with asyncio.timeout(self._timeout):
                    reason_code = await puback
            except TimeoutError:
                raise BrokerError(
                    f"no PUBACK from broker {self.address} for {topic!r} "
                    f"within {self._timeout:g} s"
                ) from None
            finally:
                self._pubacks.pop(packet_id, None)
        if reason_code.is_failure:
            raise BrokerError(
                f"broker {self.address} refused PUBLISH to {topic!r}: "
                f"PUBACK reason_code 0x{reason_code.value:02X} {reason_code}"
            )

    async def publish_batch(self, messages: Sequence[Message]) -> list[Delivery]:
        """Publish each ``(topic, payload, message_expiry_seconds)``, as ``publish``.

        Returns, per message, the :class:`BrokerError` that stopped it (None
        once its PUBACK arrived) and the seconds from PUBLISH to PUBACK. The
        window of PUBLISH packets in flight is refilled from paho's PUBACK
        callback itself, as a bare client would: no task or timer per packet.
        """
        batch = _Batch(self, messages)
        return await batch.run()

    async def _connect(self, version: aiomqtt.ProtocolVersion) -> None:
        """CONNECT with ``version``; raise _ProtocolRefusedError if refused for it."""
        client = self._new_client(version)
        try:
            await client.__aenter__()
        except MqttConnectError as exc:
            if version is aiomqtt.ProtocolVersion.V5 and _refuses_protocol(exc):
                raise _ProtocolRefusedError from exc
            raise BrokerError(
                f"broker {self.address} refused the connection: {_connack_reason(exc)}"
            ) from exc
        except _ClosedBeforeConnackError as exc:
            raise BrokerError(
                f"broker {self.address} closed the connection before CONNACK{exc}"
            ) from exc
        except aiomqtt.MqttError as exc:
            raise self._connect_error(exc) from exc.__context__ or exc
        self._client = client
        self._lost = None
        self.disconnected.clear()
        self.protocol = "5" if version is aiomqtt.ProtocolVersion.V5 else "3.1.1"

    def _connect_error(self, exc: aiomqtt.MqttError) -> BrokerError:
        # aiomqtt raises the socket's error as a message, "from None".
        error = exc.__context__
        if isinstance(error, ssl.SSLError):
            return BrokerError(
                f"TLS handshake with broker {self.address} failed: "
                f"{_without_openssl_decoration(str(error))}"
            )
        if isinstance(error, TimeoutError):
            return BrokerError(
                f"cannot connect to broker {self.address}: "
                f"no answer within {self._timeout:g} s"
            )
        return BrokerError(f"cannot connect to broker {self.address}: {exc}")

    def _new_client(self, version: aiomqtt.ProtocolVersion) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            identifier=self.client_id,
            protocol=version,
            keepalive=self._keepalive,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            # The semaphore in publish() is the only limit on PUBLISH packets
            # in flight; paho's own limit would queue them behind our timeout.
            max_inflight_messages=0,
            tls_context=self._tls_context,
        )
        self._socket_error = ""
        self._hook(client)
        return client

    def _hook(self, aiomqtt_client: aiomqtt.Client) -> None:
        """Hear CONNACK properties, every PUBACK, and a lost connection.

        aiomqtt's own CONNACK and DISCONNECT callbacks still run after ours.
        """
        paho_client = _paho_client(aiomqtt_client)
        # paho types these as a union of its v1 and v2 callback signatures;
        # aiomqtt sets v2 ones.
        aiomqtt_on_connect = cast(_Callback | None, paho_client.on_connect)
        aiomqtt_on_disconnect = cast(_Callback | None, paho_client.on_disconnect)

        def on_connect(
            client: paho.Client,
            userdata: Any,
            flags: paho.ConnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            self._on_connack(properties)
            # The log only explains failures before CONNACK; kept on, paho
            # would log a debug line for every PUBLISH and PUBACK.
            client.on_log = None
            client.disable_logger()
            if aiomqtt_on_connect is not None:
                aiomqtt_on_connect(client, userdata, flags, reason_code, properties)

        def on_disconnect(
            client: paho.Client,
            userdata: Any,
            flags: paho.DisconnectFlags,
            reason_code: ReasonCode,
            properties: Properties | None,
        ) -> None:
            self._on_disconnect(reason_code)
            self._end_connack_wait(aiomqtt_client)
            if aiomqtt_on_disconnect is not None:
                aiomqtt_on_disconnect(client, userdata, flags, reason_code, properties)

        paho_client.on_connect = on_connect
        paho_client.on_disconnect = on_disconnect
        paho_client.on_publish = self._on_puback
        paho_client.on_log = self._on_log
        paho_client.on_socket_register_write = _socket_watcher(
            asyncio.get_running_loop(), self._on_disconnect
        )
        paho_client.connect_timeout = self._timeout

    def _send(
        self, topic: str, payload: bytes, message_expiry_seconds: int | None
    ) -> tuple[int, asyncio.Future[ReasonCode]]:
        """Hand one PUBLISH to paho; return its packet_id and PUBACK future."""
        info = self._send_packet(topic, payload, message_expiry_seconds)
        # The PUBACK is read on this event loop, so it cannot arrive before
        # the future is registered here.
        puback: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._pubacks[info.mid] = _resolver(puback)
        return info.mid, puback

    def _send_packet(
        self, topic: str, payload: bytes, message_expiry_seconds: int | None
    ) -> paho.MQTTMessageInfo:
        """Hand one retained QoS 1 PUBLISH to paho."""
        if self._client is None or self._lost is not None:
            raise self._lost or BrokerError(f"not connected to broker {self.address}")
        properties = None
        if self.protocol == "5" and message_expiry_seconds is not None:
            properties = self._expiry_properties(message_expiry_seconds)
        info = _paho_client(self._client).publish(
            topic, payload, qos=1, retain=True, properties=properties
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerError(
                f"cannot publish to {topic!r} on broker {self.address}: "
                f"{paho.error_string(info.rc)}"
            )
        return info

    def _expiry_properties(self, seconds: int) -> Properties:
        """PUBLISH properties with this Message Expiry Interval, made once."""
        properties = self._properties.get(seconds)
        if properties is None:
            # paho's Properties has no type hints.
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = seconds
            if len(self._properties) > 4096:
                self._properties.clear()
            self._properties[seconds] = properties
        return properties

    def _end_connack_wait(self, client: aiomqtt.Client) -> None:
        # aiomqtt waits for a CONNACK until its timeout even when the broker
        # has closed the connection (a TLS alert for a missing client
        # certificate arrives only after the handshake). Stop it waiting.
        connack = client._connected
        if not connack.done():
            detail = f": {self._socket_error}" if self._socket_error else ""
            connack.set_exception(_ClosedBeforeConnackError(detail))

    def _on_log(self, client: paho.Client, userdata: Any, level: int, buf: str) -> None:
        # paho reports why a socket failed only in its log.
        if level == paho.MQTT_LOG_ERR:
            self._socket_error = _without_openssl_decoration(buf)

    def _on_connack(self, properties: Properties | None) -> None:
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if isinstance(receive_maximum, int) and receive_maximum < self._max_in_flight:
            # MQTT 5: never more unacknowledged QoS 1 PUBLISH packets than the
            # broker's Receive Maximum [MQTT-3.3.4-7].
            self._slots = asyncio.Semaphore(receive_maximum)
            self._window = receive_maximum

    def _on_puback(
        self,
        client: paho.Client,
        userdata: Any,
        packet_id: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        settle = self._pubacks.pop(packet_id, None)
        if settle is not None:
            settle(reason_code)

    def _on_disconnect(self, reason_code: ReasonCode | OSError) -> None:
        if self._client is None or self._lost is not None:
            return
        self._lost = BrokerError(
            f"connection to broker {self.address} lost: {reason_code}"
        )
        self.disconnected.set()
        self._fail_pending(self._lost)

    def _fail_pending(self, error: BrokerError) -> None:
        pubacks, self._pubacks = self._pubacks, {}
        for settle in pubacks.values():
            settle(error)


def _resolver(
    puback: asyncio.Future[ReasonCode],
) -> Callable[[ReasonCode | BrokerError], None]:
    def settle(outcome: ReasonCode | BrokerError) -> None:
        if puback.done():
            return
        if isinstance(outcome, BrokerError):
            puback.set_exception(outcome)
        else:
            puback.set_result(outcome)

    return settle


class _Batch:
    """A burst of PUBLISH packets kept within the broker's window."""

    def __init__(self, publisher: MqttPublisher, messages: Sequence[Message]) -> None:
        self._publisher = publisher
        self._messages = messages
        self._results: list[Delivery] = [(None, 0.0)] * len(messages)
        self._sent_at = [0.0] * len(messages)
        self._in_flight = 0
        self._next = 0
        self._left = len(messages)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._done: asyncio.Future[None] = loop.create_future()
        self._progress = loop.time()
        self._timed_out = False

    async def run(self) -> list[Delivery]:
        if not self._messages:
            return []
        self._fill()
        watchdog = self._loop.call_later(self._publisher._timeout, self._watch)
        try:
            await self._done
        finally:
            watchdog.cancel()
        return self._results

    def _fill(self) -> None:
        window, total = self._publisher._window, len(self._messages)
        while not self._timed_out and self._in_flight < window and self._next < total:
            index = self._next
            self._next += 1
            topic, payload, expiry = self._messages[index]
            self._sent_at[index] = self._loop.time()
            try:
                info = self._publisher._send_packet(topic, payload, expiry)
            except BrokerError as error:
                self._settle(index, error)
                continue
            self._in_flight += 1
            self._publisher._pubacks[info.mid] = self._settler(index)

    def _settler(self, index: int) -> Callable[[ReasonCode | BrokerError], None]:
        def settle(outcome: ReasonCode | BrokerError) -> None:
            self._in_flight -= 1
            self._progress = self._loop.time()
            self._settle(
                index, _failure(self._publisher, self._messages[index][0], outcome)
            )
            self._fill()

        return settle

    def _settle(self, index: int, error: BrokerError | None) -> None:
        self._results[index] = (error, self._loop.time() - self._sent_at[index])
        self._left -= 1
        if not self._left and not self._done.done():
            self._done.set_result(None)

    def _watch(self) -> None:
        """Fail what is left once no PUBACK came for the whole timeout."""
        timeout = self._publisher._timeout
        idle = self._loop.time() - self._progress
        if self._done.done():
            return
        if idle < timeout:
            self._loop.call_later(timeout - idle, self._watch)
            return
        error = BrokerError(
            f"no PUBACK from broker {self._publisher.address} within {timeout:g} s"
        )
        # Settle everything now: nothing more is sent to a broker that has
        # stopped answering, and the publisher backs off and retries.
        self._timed_out = True
        self._publisher._fail_pending(error)
        while self._next < len(self._messages):
            self._next += 1
            self._settle(self._next - 1, error)


def _failure(
    publisher: MqttPublisher, topic: str, outcome: ReasonCode | BrokerError
) -> BrokerError | None:
    if isinstance(outcome, BrokerError):
        return outcome
    if outcome.is_failure:
        return BrokerError(
            f"broker {publisher.address} refused PUBLISH to {topic!r}: "
            f"PUBACK reason_code 0x{outcome.value:02X} {outcome}"
        )
    return None


def _tls_context_for(
    address: BrokerAddress, tls: TlsOptions | None
) -> ssl.SSLContext | None:
    """The one SSLContext for ``address``, or None for ``mqtt://``."""
    options = tls or TlsOptions(None, None, None)
    if not address.tls:
        given = [name for name, path in _tls_files(options) if path is not None]
        if given or options.insecure:
            option = given[0] if given else "insecure"
            raise UsageError(
                f"{option}: expected an mqtts:// broker URL, got mqtt://{address}"
            )
        return None
    context = _tls_context(options)
    if options.insecure:
        logger.warning(
            "broker %s: host name verification is off (insecure); "
            "any certificate from a trusted CA passes as the broker's",
            address,
        )
    return context


def _tls_files(options: TlsOptions) -> list[tuple[str, Path | None]]:
    return [
        ("ca_file", options.ca_file),
        ("cert_file", options.cert_file),
        ("key_file", options.key_file),
    ]


def _tls_context(options: TlsOptions) -> ssl.SSLContext:
    """Verify the broker against ``ca_file``; present ``cert_file`` if given."""
    for option, path in _tls_files(options):
        if path is not None:
            _check_readable(option, path)
    if options.key_file is not None and options.cert_file is None:
        raise UsageError(f"key_file: {options.key_file} given without a cert_file")

    try:
        context = ssl.create_default_context(cafile=options.ca_file)
    except ssl.SSLError as exc:
        raise UsageError(
            f"ca_file: expected PEM certificates in {options.ca_file}, found none"
        ) from exc
    if options.cert_file is not None:
        _load_client_certificate(context, options.cert_file, options.key_file)
    # The chain stays verified (CERT_REQUIRED) either way.
    context.check_hostname = not options.insecure
    return context


def _check_readable(option: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option}: cannot read {path}: {exc.strerror or exc}"
        ) from exc


def _load_client_certificate(
    context: ssl.SSLContext, cert_file: Path, key_file: Path | None
) -> None:
    # load_cert_chain reports a missing certificate and a missing key alike
    # ("PEM lib"); reading the certificate alone first tells them apart.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cert_file)
    except ssl.SSLError as exc:
        raise UsageError(
            f"cert_file: expected a PEM certificate in {cert_file}, found none"
        ) from exc

    key_option, key_path = (
        ("key_file", key_file) if key_file else ("cert_file", cert_file)
    )
    try:
        # Without a password callback, OpenSSL would prompt on the terminal.
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _EncryptedKeyError:
        raise UsageError(
            f"{key_option}: the private key in {key_path} is encrypted; "
            "expected an unencrypted key"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise UsageError(
                f"{key_option}: the private key in {key_path} "
                f"does not match the certificate in {cert_file}"
            ) from exc
        raise UsageError(
            f"{key_option}: expected a PEM private key in {key_path}, found none"
        ) from exc


def _no_passphrase() -> str:
    raise _EncryptedKeyError


def _without_openssl_decoration(message: str) -> str:
    return _OPENSSL_DECORATION.sub("", message).strip()


def _paho_client(client: aiomqtt.Client) -> paho.Client:
    # aiomqtt keeps its paho-mqtt client private; publishing through it is
    # the only way to see a PUBACK's reason_code (aiomqtt 2.5 drops it).
    return client._client


def _socket_watcher(
    loop: asyncio.AbstractEventLoop, on_error: Callable[[OSError], None]
) -> Callable[[paho.Client, Any, paho.SocketLike], None]:
    """paho's ``on_socket_register_write``: watch for room to write on ``loop``.

    aiomqtt's version schedules ``add_writer`` with the file descriptor of
    the moment; when the broker drops the connection mid-burst the socket
    closes before that runs, and asyncio logs "Bad file descriptor" (or
    watches a descriptor already reused). Here the check and ``add_writer``
    run in one callback on the loop, with nothing in between.
    """

    def register_write(
        client: paho.Client, userdata: Any, sock: paho.SocketLike
    ) -> None:
        def write() -> None:
            try:
                client.loop_write()
            except OSError as exc:
                on_error(exc)

        def watch() -> None:
            if sock.fileno() != -1:
                loop.add_writer(sock.fileno(), write)

        # paho calls this from aiomqtt's executor thread during CONNECT.
        loop.call_soon_threadsafe(watch)

    return register_write


def _retrieve_lost_connection_error(client: aiomqtt.Client) -> None:
    # aiomqtt stores an unexpected disconnection as the exception of a
    # private future that its __aexit__ then never reads, which asyncio
    # reports as "Future exception was never retrieved". We already turned
    # it into a BrokerError; mark it read.
    lost = client._disconnected
    if lost.done() and not lost.cancelled():
        lost.exception()


def _refuses_protocol(exc: MqttConnectError) -> bool:
    code = exc.rc
    return isinstance(code, ReasonCode) and code.value == _UNSUPPORTED_PROTOCOL_VERSION


def _connack_reason(exc: MqttConnectError) -> str:
    code = exc.rc
    if isinstance(code, ReasonCode):
        return f"CONNACK reason_code 0x{code.value:02X} {code}"
    return f"CONNACK return code {code}: {paho.connack_string(code or 0)}"
