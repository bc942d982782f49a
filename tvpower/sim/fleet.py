"""Simulated TV clients, fed by real MQTT subscriptions.

One fleet subscriber (a real aiomqtt connection) receives every intent and
hands it to the simulated client it is for. A client that reconnects or
joins opens a short-lived connection of its own and learns the retained
intent of its topics, as a real client would.

Each client behaves as a careful client of the contract: ``on`` at once,
``off`` only after ``grace_seconds`` unless a newer intent arrives in
between, expired intents and other topics ignored, its own topic before its
group's while its own intent holds. When the intent it holds expires with
nothing newer, it keeps the TV as it is, or, as some clients do, takes the
expiry for ``off`` (``on_expiry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiomqtt

from tvpower.clock import Clock
from tvpower.intents import schema_problem

__all__ = [
    "Fleet",
    "FleetSubscriber",
    "Receipt",
    "SimClient",
    "client_topic",
    "fetch_retained",
]

PREFIX = "infoscreen"
_CLIENT_TOPIC = re.compile(rf"^{PREFIX}/([^/]+)/power/intent$")
_GROUP_TOPIC = re.compile(rf"^{PREFIX}/groups/([^/]+)/power/intent$")
FILTERS = (f"{PREFIX}/+/power/intent", f"{PREFIX}/groups/+/power/intent")
#: How a receipt's ``problem`` begins when the intent had expired on arrival.
EXPIRED = "expired on arrival"
# How long a reconnecting client waits for the retained intents of its topics.
RETAINED_WAIT_SECONDS = 3.0


def client_topic(client_id: str) -> str:
    """The client's own topic, which the publisher always publishes."""
    return f"{PREFIX}/{client_id}/power/intent"


@dataclass(frozen=True)
class Receipt:
    """One intent message as one client received it."""

    at: datetime
    client_id: str
    topic: str
    via: str
    retained: bool
    valid: bool
    problem: str
    payload: dict[str, Any]

    def row(self) -> dict[str, Any]:
        power = self.payload.get("power") or {}
        return {
            "client_id": self.client_id,
            "at": self.at,
            "topic": self.topic,
            "via": self.via,
            "retained": self.retained,
            "valid": self.valid,
            "problem": self.problem,
            "intent_id": self.payload.get("intent_id"),
            "desired_state": power.get("desired_state"),
            "reason": power.get("reason"),
            "grace_seconds": power.get("grace_seconds"),
            "issued_at": self.payload.get("issued_at"),
            "expires_at": self.payload.get("expires_at"),
        }


@dataclass
class SimClient:
    """One TV and the small computer driving it."""

    client_id: str
    group_id: str | None
    present: bool
    power: str = "off"
    since: datetime | None = None
    connected: bool = True
    off_at: datetime | None = None
    reason: str | None = None
    own: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    segments: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    #: ``keep`` or ``off``: what an expired intent means (see the module).
    on_expiry: str = "keep"
    #: The intent in force, and when it expires.
    held: dict[str, Any] | None = None
    held_until: datetime | None = None

    def join(self, now: datetime) -> None:
        self.present = True
        self.connected = True
        self.since = now

    def learn(self, payload: dict[str, Any], *, own: bool, now: datetime) -> None:
        """Take a valid, unexpired intent into account."""
        if own:
            self.own = payload
        else:
            self.group = payload
        if self._in_force(now) is payload:  # not a group's under an own one
            self._apply(payload, now)

    def deadline(self) -> datetime | None:
        """The next instant this client acts on its own: grace out, or expiry."""
        if self.off_at is not None:
            return self.off_at
        if self.on_expiry == "off" and self.power == "on":
            return self.held_until
        if self.held is self.own and self.group is not None:
            return self.held_until  # the group's intent takes over then
        return None

    def tick(self, now: datetime) -> None:
        """Switch off if a grace has run out; fall back when an intent expires."""
        if self.held_until is not None and self.held_until <= now:
            expired, until = self.held, self.held_until
            current = self._in_force(now)
            if current is not None:
                self._apply(current, now)
            elif self.on_expiry == "off" and expired is not None:
                self.held = self.held_until = None
                self._off_after_grace(expired, until)
            else:
                self.held = self.held_until = None
        if self.off_at is not None and self.off_at <= now:
            self._switch("off", self.off_at)
            self.off_at = None

    def _in_force(self, now: datetime) -> dict[str, Any] | None:
        """The client's own intent while it holds, else its group's."""
        for intent in (self.own, self.group):
            if intent is not None and _expires(intent) > now:
                return intent
        return None

    def _apply(self, payload: dict[str, Any], now: datetime) -> None:
        self.held, self.held_until = payload, _expires(payload)
        self.reason = payload["power"]["reason"]
        if payload["power"]["desired_state"] == "on":
            self.off_at = None
            self._switch("on", now)
        else:
            self._off_after_grace(payload, now)

    def _off_after_grace(self, payload: dict[str, Any], since: datetime) -> None:
        if self.power == "on" and self.off_at is None:
            grace = timedelta(seconds=payload["power"]["grace_seconds"])
            self.off_at = since + grace

    def finish(self, end: datetime) -> None:
        if self.present and self.since is not None and self.since < end:
            self.segments.append((self.since, end, self.power))
        self.since = end

    def _switch(self, power: str, at: datetime) -> None:
        if power == self.power:
            return
        if self.since is not None and self.since < at:
            self.segments.append((self.since, at, self.power))
        self.power = power
        self.since = at


@dataclass
class Fleet:
    """The simulated clients, and everything they received."""

    clients: dict[str, SimClient]
    clock: Clock
    on_expiry: str = "keep"
    receipts: list[Receipt] = field(default_factory=list)
    #: Live copies per (topic, intent_id, issued_at) at the fleet subscriber:
    #: the publishes that went through. Retained copies and reconnecting
    #: clients' fetches repeat an earlier publish and are not counted.
    arrived: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def deliver(
        self, topic: str, body: bytes, *, retained: bool, via: str, only: str | None
    ) -> None:
        """Hand one message to the clients it is for (``only``: to that one)."""
        targets = self._targets(topic)
        if targets is None:
            return  # another topic: amqtt may send any retained message
        payload, problem = _decode(body)
        if via == "live" and not retained:
            key = (topic, str(payload.get("intent_id")), str(payload.get("issued_at")))
            self.arrived[key] += 1
        now = self.clock.now()
        problem = problem or _timing_problem(payload, now)
        for client in targets:
            if only is not None and client.client_id != only:
                continue
            if not (client.present and client.connected):
                continue
            self.receipts.append(
                Receipt(
                    now,
                    client.client_id,
                    topic,
                    via,
                    retained,
                    not problem,
                    problem,
                    payload,
                )
            )
            if not problem:
                own = _CLIENT_TOPIC.match(topic) is not None
                client.learn(payload, own=own, now=now)

    def __post_init__(self) -> None:
        for client in self.clients.values():
            client.on_expiry = self.on_expiry

    def next_deadline(self) -> datetime | None:
        deadlines = [c.deadline() for c in self.clients.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def tick(self) -> None:
        now = self.clock.now()
        for client in self.clients.values():
            client.tick(now)

    def _targets(self, topic: str) -> list[SimClient] | None:
        match = _CLIENT_TOPIC.match(topic)
        if match is not None and match.group(1) != "groups":
            client = self.clients.get(match.group(1))
            return [client] if client is not None else []
        match = _GROUP_TOPIC.match(topic)
        if match is not None:
            group = match.group(1)
            return [c for c in self.clients.values() if c.group_id == group]
        return None


def _decode(body: bytes) -> tuple[dict[str, Any], str]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        return {}, f"not JSON: {exc}"
    problem = schema_problem(payload)
    if problem:
        return payload if isinstance(payload, dict) else {}, f"schema: {problem}"
    return payload, ""


def _expires(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload["expires_at"])


def _timing_problem(payload: dict[str, Any], now: datetime) -> str:
    if not payload:
        return ""
    for name in ("issued_at", "expires_at"):
        if not str(payload.get(name, "")).endswith("Z"):
            return f"{name} is not UTC with Z: {payload.get(name)!r}"
    expires = datetime.fromisoformat(payload["expires_at"])
    if expires <= now:
        return f"{EXPIRED}: expires_at {payload['expires_at']}"
    return ""


def _mqtt_client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"sim-{name}-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V311,
    )


class FleetSubscriber:
    """The one live subscription of the whole fleet, restartable."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._stack: contextlib.AsyncExitStack | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, port: int) -> None:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(_mqtt_client(port, "fleet"))
        for topic_filter in FILTERS:
            await client.subscribe(topic_filter, qos=1)
        self._stack = stack
        self._reader = asyncio.create_task(self._read(client))

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                self.fleet.deliver(
                    message.topic.value,
                    _body(message.payload),
                    retained=bool(message.retain),
                    via="live",
                    only=None,
                )


async def fetch_retained(
    port: int, fleet: Fleet, client: SimClient, *, group_topics: bool
) -> int:
    """Subscribe as ``client`` on a fresh connection; deliver what is retained.

    Returns how many intents of its topics arrived within the wait.
    """
    topics = [client_topic(client.client_id)]
    if group_topics and client.group_id is not None:
        topics.append(f"{PREFIX}/groups/{client.group_id}/power/intent")
    seen: set[str] = set()
    async with _mqtt_client(port, client.client_id) as connection:
        for topic in topics:
            await connection.subscribe(topic, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETAINED_WAIT_SECONDS):
                async for message in connection.messages:
                    topic = message.topic.value
                    if topic not in topics:
                        continue
                    fleet.deliver(
                        topic,
                        _body(message.payload),
                        retained=bool(message.retain),
                        via="reconnect",
                        only=client.client_id,
                    )
                    seen.add(topic)
                    if len(seen) == len(topics):
                        break
        # Known shortcoming of amqtt 0.12: a client's CONNECT walks the
        # broker's subscriptions while a departed client's are deleted, and
        # fails ("dictionary changed size during iteration") when clients
        # come and go in quick succession. Unsubscribing, acknowledged,
        # before leaving keeps the departure from deleting anything.
        await connection.unsubscribe(topics)
    return len(seen)


def _body(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()
