"""The embedded broker: ports, retained QoS 1 messages, bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import aiomqtt
import pytest

from tvpower.broker import EmbeddedBroker
from tvpower.errors import BrokerError
from tvpower.mqtt import MqttPublisher, parse_broker_url

from .conftest import collect_retained, unique_topic


async def _accepts_connections(port: int) -> bool:
    # An MQTT client rather than a bare TCP probe: amqtt leaves connections
    # that send no CONNECT open, and their sockets leak.
    try:
        async with aiomqtt.Client("127.0.0.1", port, timeout=5):
            return True
    except aiomqtt.MqttError:
        return False


def _amqtt_tasks() -> list[asyncio.Task[object]]:
    def code_file(task: asyncio.Task[object]) -> str:
        code = getattr(task.get_coro(), "cr_code", None)
        return code.co_filename if code is not None else ""

    return [task for task in asyncio.all_tasks() if "/amqtt/" in code_file(task)]


async def test_listens_on_the_requested_port(free_port: int) -> None:
    async with EmbeddedBroker("127.0.0.1", free_port) as broker:
        assert (broker.host, broker.port) == ("127.0.0.1", free_port)
        assert broker.url == f"mqtt://127.0.0.1:{free_port}"
        assert broker.moved_from is None
        assert await _accepts_connections(free_port)


async def test_port_zero_means_any_free_port() -> None:
    async with EmbeddedBroker("127.0.0.1", 0) as broker:
        assert broker.port != 0
        assert broker.moved_from is None
        assert await _accepts_connections(broker.port)


async def test_taken_port_moves_to_a_free_one_and_warns(
    free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", free_port))
        squatter.listen()
        with caplog.at_level(logging.WARNING, logger="tvpower.broker"):
            async with EmbeddedBroker("127.0.0.1", free_port) as broker:
                assert broker.port not in (0, free_port)
                assert broker.moved_from == free_port
                assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
                assert await _accepts_connections(broker.port)

    warnings = [r for r in caplog.records if r.name == "tvpower.broker"]
    assert [r.getMessage() for r in warnings] == [
        f"port {free_port} on 127.0.0.1 is taken; "
        f"embedded broker listens on port {broker.port}"
    ]


async def test_an_address_that_is_not_ours_is_a_broker_error() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to this machine, so the
    # bind fails at once and nothing is sent anywhere.
    with pytest.raises(BrokerError, match=r"^embedded broker cannot listen on 192"):
        async with EmbeddedBroker("192.0.2.1", 0):
            pass


async def test_retained_qos1_message_reaches_a_fresh_subscriber(
    embedded_broker: EmbeddedBroker,
) -> None:
    topic = unique_topic()
    async with aiomqtt.Client("127.0.0.1", embedded_broker.port) as publisher:
        await publisher.publish(topic, b"on", qos=1, retain=True)

    assert await collect_retained(embedded_broker.url, topic) == {topic: b"on"}


async def test_stop_closes_the_port(free_port: int) -> None:
    async with EmbeddedBroker("127.0.0.1", free_port):
        pass

    assert not await _accepts_connections(free_port)


async def test_stop_is_bounded_while_a_client_is_mid_burst() -> None:
    broker = EmbeddedBroker("127.0.0.1", 0, shutdown_timeout=1.0)
    await broker.start()
    address = parse_broker_url(broker.url)
    async with (
        aiomqtt.Client("127.0.0.1", broker.port) as subscriber,
        MqttPublisher(address, client_id="burst", timeout=30) as publisher,
    ):
        await subscriber.subscribe("burst/#", qos=1)
        burst = asyncio.gather(
            *(
                publisher.publish(f"burst/{i}", b"x", message_expiry_seconds=None)
                for i in range(3000)
            ),
            return_exceptions=True,
        )
        await asyncio.sleep(0.5)

        began = time.monotonic()
        await broker.stop()
        elapsed = time.monotonic() - began

        await asyncio.wait_for(burst, 5)
        with contextlib.suppress(aiomqtt.MqttError):
            await asyncio.wait_for(_drain(subscriber), 5)

    assert elapsed < 5.0
    assert not await _accepts_connections(broker.port)
    assert _amqtt_tasks() == []


async def test_forced_tear_down_ends_its_own_tasks_and_spares_others() -> None:
    # shutdown_timeout=0 gives up on amqtt's shutdown() at once, so the
    # forced tear-down runs every time instead of only when shutdown() hangs.
    topic = unique_topic()
    async with EmbeddedBroker("127.0.0.1", 0) as other:
        await asyncio.sleep(0.1)  # its broadcast loop starts its first round
        others_tasks = set(_amqtt_tasks())
        broker = EmbeddedBroker("127.0.0.1", 0, shutdown_timeout=0)
        await broker.start()
        address = parse_broker_url(broker.url)
        async with MqttPublisher(address, client_id="doomed") as publisher:
            await publisher.publish(topic, b"on", message_expiry_seconds=None)
            await broker.stop()

        assert not await _accepts_connections(broker.port)
        assert set(_amqtt_tasks()) == others_tasks
        async with MqttPublisher(parse_broker_url(other.url), client_id="ok") as ok:
            await ok.publish(topic, b"on", message_expiry_seconds=None)
        assert await collect_retained(other.url, topic) == {topic: b"on"}


async def _drain(client: aiomqtt.Client) -> None:
    """Read messages until the lost connection raises MqttError."""
    async for _message in client.messages:
        pass
