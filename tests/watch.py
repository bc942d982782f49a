"""A real MQTT subscriber that records every intent it receives, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import jsonschema

from tvpower.intents import validate_payload


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool


@dataclass
class Watch:
    """Messages seen so far, in arrival order."""

    messages: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    invalid: list[str] = field(default_factory=list)

    def for_client(self, client_id: str) -> list[dict[str, Any]]:
        topic = f"infoscreen/{client_id}/power/intent"
        return [m.payload for m in self.messages if m.topic == topic]

    async def wait_for(self, count: int, seconds: float = 5.0) -> None:
        """Until at least ``count`` intent messages arrived (bounded)."""
        async with asyncio.timeout(seconds), self.arrived:
            await self.arrived.wait_for(lambda: len(self.messages) >= count)


@contextlib.asynccontextmanager
async def watching(
    port: int, topic_filter: str = "infoscreen/+/power/intent"
) -> AsyncIterator[Watch]:
    """Subscribe on 127.0.0.1:``port`` and record intents until the block ends.

    Only topics matching the filter's shape are kept: a fresh amqtt
    connection can be sent other topics' retained messages first. Every
    intent is checked against the shipped schema as it arrives, and the
    block fails if one was invalid.
    """
    watch = Watch()
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"watch-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V311,
    )
    async with client:
        await client.subscribe(topic_filter, qos=1)
        task = asyncio.create_task(_record(client, watch))
        try:
            yield watch
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert not watch.invalid, f"invalid intents received: {watch.invalid}"


async def _record(client: aiomqtt.Client, watch: Watch) -> None:
    async for message in client.messages:
        topic = message.topic.value
        if not (topic.startswith("infoscreen/") and topic.endswith("/power/intent")):
            continue
        payload = json.loads(bytes(message.payload))  # type: ignore[arg-type]
        try:
            validate_payload(payload)
        except jsonschema.ValidationError as exc:
            watch.invalid.append(f"{topic}: {exc.message}")
        async with watch.arrived:
            watch.messages.append(Received(topic, payload, bool(message.retain)))
            watch.arrived.notify_all()
