"""The MQTT client seam, against the embedded amqtt broker and Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from tvpower.broker import EmbeddedBroker
from tvpower.errors import BrokerError, UsageError
from tvpower.mqtt import (
    BrokerAddress,
    MqttPublisher,
    default_client_id,
    parse_broker_url,
)

from .conftest import Mosquitto, collect_retained, unique_topic


def _publisher(url: str) -> MqttPublisher:
    return MqttPublisher(parse_broker_url(url), client_id=default_client_id())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.example", BrokerAddress("broker.example", 1883, tls=False)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, tls=True)),
        ("mqtt://127.0.0.1:1884", BrokerAddress("127.0.0.1", 1884)),
        ("mqtts://127.0.0.1:8884/", BrokerAddress("127.0.0.1", 8884, tls=True)),
        ("mqtt://[::1]:1885", BrokerAddress("::1", 1885)),
    ],
)
def test_parse_broker_url(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


_EXPECTED_SCHEME = "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
_EXPECTED_PORT = "expected a port from 1 to 65535"
_EXPECTED_NOTHING_ELSE = "expected only a host and a port, without user, path or query"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", f"broker URL '': {_EXPECTED_SCHEME}"),
        ("broker:1883", f"broker URL 'broker:1883': {_EXPECTED_SCHEME}"),
        ("http://broker", f"broker URL 'http://broker': {_EXPECTED_SCHEME}"),
        ("mqtt://", f"broker URL 'mqtt://': {_EXPECTED_SCHEME}"),
        ("mqtt://:1883", f"broker URL 'mqtt://:1883': {_EXPECTED_SCHEME}"),
        ("mqtt://[::1", f"broker URL 'mqtt://[::1': {_EXPECTED_SCHEME}"),
        ("mqtt://broker:0", f"broker URL 'mqtt://broker:0': {_EXPECTED_PORT}"),
        ("mqtt://broker:65536", f"broker URL 'mqtt://broker:65536': {_EXPECTED_PORT}"),
        ("mqtt://broker:port", f"broker URL 'mqtt://broker:port': {_EXPECTED_PORT}"),
        (
            "mqtt://me@broker",
            f"broker URL 'mqtt://me@broker': {_EXPECTED_NOTHING_ELSE}",
        ),
        (
            "mqtt://broker/tv",
            f"broker URL 'mqtt://broker/tv': {_EXPECTED_NOTHING_ELSE}",
        ),
        (
            "mqtt://broker?x=1",
            f"broker URL 'mqtt://broker?x=1': {_EXPECTED_NOTHING_ELSE}",
        ),
    ],
)
def test_parse_broker_url_rejects(url: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_broker_url(url)

    assert str(raised.value) == message


def test_default_client_id_is_unique_per_publisher() -> None:
    first, second = default_client_id(), default_client_id()

    assert re.fullmatch(r"tvpower-[A-Za-z0-9-]+-\d+-[0-9a-f]{6}", first)
    assert first != second


async def test_embedded_amqtt_falls_back_to_mqtt_311(
    embedded_broker: EmbeddedBroker,
) -> None:
    topic = unique_topic()
    async with _publisher(embedded_broker.url) as publisher:
        assert publisher.protocol == "3.1.1"
        assert publisher.connected
        await publisher.publish(topic, b"on", message_expiry_seconds=600)

    assert await collect_retained(embedded_broker.url, topic) == {topic: b"on"}


async def test_mosquitto_speaks_mqtt_5(mosquitto_broker: Mosquitto) -> None:
    topic = unique_topic()
    async with _publisher(mosquitto_broker.url) as publisher:
        assert publisher.protocol == "5"
        await publisher.publish(topic, b"on", message_expiry_seconds=None)

    assert await collect_retained(mosquitto_broker.url, topic) == {topic: b"on"}


async def test_message_expiry_reaches_v5_subscribers_and_ends_retention(
    mosquitto_broker: Mosquitto,
) -> None:
    topic = unique_topic()
    async with _publisher(mosquitto_broker.url) as publisher:
        await publisher.publish(topic, b"on", message_expiry_seconds=2)
    published = time.monotonic()

    message = await _first_message_v5(mosquitto_broker.port, topic)
    assert message.retain
    assert 1 <= message.properties.MessageExpiryInterval <= 2  # type: ignore[union-attr]

    await asyncio.sleep(max(0.0, published + 3.0 - time.monotonic()))
    assert await collect_retained(mosquitto_broker.url, topic) == {}


async def _first_message_v5(port: int, topic: str) -> aiomqtt.Message:
    client = aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5
    )
    async with client:
        await client.subscribe(topic, qos=1)
        return await asyncio.wait_for(anext(client.messages), 5)


async def test_closed_port_is_a_broker_error_naming_it(free_port: int) -> None:
    began = time.monotonic()
    with pytest.raises(BrokerError) as raised:
        async with _publisher(f"mqtt://127.0.0.1:{free_port}"):
            pass

    assert str(raised.value).startswith(
        f"cannot connect to broker 127.0.0.1:{free_port}: "
    )
    assert "Connection refused" in str(raised.value)
    assert time.monotonic() - began < 2.0


async def test_refused_connack_is_a_broker_error_without_fallback(
    start_mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = start_mosquitto(["allow_anonymous false"])

    with pytest.raises(BrokerError) as raised:
        async with _publisher(broker.url):
            pass

    assert str(raised.value) == (
        f"broker 127.0.0.1:{broker.port} refused the connection: "
        "CONNACK reason_code 0x87 Not authorized"
    )


async def test_failure_reason_code_in_puback_is_a_broker_error(
    start_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    broker = start_mosquitto(["allow_anonymous true", f"acl_file {acl}"])

    async with _publisher(broker.url) as publisher:
        with pytest.raises(BrokerError) as raised:
            await publisher.publish("denied/tv", b"on", message_expiry_seconds=60)
        await publisher.publish("allowed/tv", b"on", message_expiry_seconds=60)

    assert str(raised.value) == (
        f"broker 127.0.0.1:{broker.port} refused PUBLISH to 'denied/tv': "
        "PUBACK reason_code 0x87 Not authorized"
    )


async def test_lost_connection_fails_publish_at_once(free_port: int) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port)
    await broker.start()
    async with _publisher(broker.url) as publisher:
        await broker.stop()
        for _ in range(50):
            if not publisher.connected:
                break
            await asyncio.sleep(0.1)
        assert not publisher.connected

        with pytest.raises(BrokerError, match=r"^connection to broker .* lost"):
            await publisher.publish(unique_topic(), b"on", message_expiry_seconds=60)


async def test_publish_needs_a_connection(embedded_broker: EmbeddedBroker) -> None:
    publisher = _publisher(embedded_broker.url)

    with pytest.raises(BrokerError) as raised:
        await publisher.publish("tv", b"on", message_expiry_seconds=None)

    assert (
        str(raised.value) == f"not connected to broker 127.0.0.1:{embedded_broker.port}"
    )


@pytest.fixture(params=["embedded_broker", "mosquitto_broker"])
def any_broker(request: pytest.FixtureRequest) -> EmbeddedBroker | Mosquitto:
    """Each broker in turn: amqtt (MQTT 3.1.1) and Mosquitto (MQTT 5)."""
    broker: EmbeddedBroker | Mosquitto = request.getfixturevalue(request.param)
    return broker


async def test_a_thousand_concurrent_publishes_are_all_acknowledged(
    any_broker: EmbeddedBroker | Mosquitto,
) -> None:
    broker = any_broker
    prefix = unique_topic()
    topics = [f"{prefix}/{i}" for i in range(1000)]

    async with _publisher(broker.url) as publisher:
        await asyncio.gather(
            *(
                publisher.publish(topic, topic.encode(), message_expiry_seconds=600)
                for topic in topics
            )
        )

    retained = await collect_retained(broker.url, f"{prefix}/#", timeout=20)
    assert retained == {topic: topic.encode() for topic in topics}


async def test_a_batch_of_a_thousand_is_acknowledged_and_retained(
    any_broker: EmbeddedBroker | Mosquitto,
) -> None:
    broker = any_broker
    prefix = unique_topic()
    # A thousand: Mosquitto queues at most 1000 messages for the subscriber
    # that reads them back (max_queued_messages).
    messages = [(f"{prefix}/{i}", f"{i}".encode(), 600) for i in range(1000)]

    async with _publisher(broker.url) as publisher:
        deliveries = await publisher.publish_batch(messages)

    assert [error for error, _ in deliveries] == [None] * len(messages)
    assert all(latency >= 0 for _, latency in deliveries)
    retained = await collect_retained(broker.url, f"{prefix}/#", timeout=20)
    assert retained == {topic: payload for topic, payload, _ in messages}


async def test_a_batch_reports_each_refused_publish(
    start_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    broker = start_mosquitto(["allow_anonymous true", f"acl_file {acl}"])
    messages = [
        ("allowed/a", b"on", 60),
        ("denied/b", b"on", 60),
        ("allowed/c", b"on", 60),
    ]

    async with _publisher(broker.url) as publisher:
        deliveries = await publisher.publish_batch(messages)

    errors = [None if error is None else str(error) for error, _ in deliveries]
    assert errors == [
        None,
        f"broker 127.0.0.1:{broker.port} refused PUBLISH to 'denied/b': "
        "PUBACK reason_code 0x87 Not authorized",
        None,
    ]


async def test_a_batch_on_a_lost_connection_fails_every_message(free_port: int) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port)
    await broker.start()
    async with _publisher(broker.url) as publisher:
        await broker.stop()
        async with asyncio.timeout(5):
            await publisher.disconnected.wait()
        deliveries = await publisher.publish_batch([("a", b"on", 60), ("b", b"on", 60)])

    assert [str(error) for error, _ in deliveries] == [
        str(deliveries[0][0]),
        str(deliveries[0][0]),
    ]
    assert str(deliveries[0][0]).startswith(
        f"connection to broker 127.0.0.1:{free_port} lost"
    )


async def _silent_broker(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Accepts an MQTT 3.1.1 session, then never acknowledges a PUBLISH."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            data = await reader.read(4096)
            if not data:
                return
            level = data.find(b"MQTT")
            if level != -1 and data[0] >> 4 == 1:  # CONNECT
                refuses_v5 = data[level + 4] == 5
                writer.write(b"\x20\x02\x00\x01" if refuses_v5 else b"\x20\x02\x00\x00")
                await writer.drain()


async def test_a_batch_to_a_broker_that_stops_answering_ends_at_the_timeout(
    free_port: int,
) -> None:
    server = await asyncio.start_server(_silent_broker, "127.0.0.1", free_port)
    address = parse_broker_url(f"mqtt://127.0.0.1:{free_port}")
    messages = [(f"tv/{i}", b"on", 60) for i in range(200)]
    async with server:
        publisher = MqttPublisher(address, client_id=default_client_id(), timeout=1.0)
        async with publisher, asyncio.timeout(5):
            deliveries = await publisher.publish_batch(messages)

    assert {str(error) for error, _ in deliveries} == {
        f"no PUBACK from broker 127.0.0.1:{free_port} within 1 s"
    }
