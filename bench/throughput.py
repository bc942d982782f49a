"""How fast tvpower publishes intents, next to a bare MQTT client, on Mosquitto.

A fleet of ``--clients`` clients (10,000) in up to 100 groups, each group
with three events on one day; half of the groups are inside an event at the
instant published. In one run, taking turns:

- **tvpower**: a fresh ``Publisher`` on a ``SteppedClock`` does one full
  ``reconcile`` through a connected ``MqttPublisher``: the engine, every
  payload, every PUBLISH and its PUBACK. Connecting is not timed.
- **bare**: a paho-mqtt client publishes the very same encoded payloads to
  the same topics, retained at QoS 1 (on MQTT 5 with the same Message
  Expiry Interval), and waits for every PUBACK. Connecting is not timed.

Both keep the same window of PUBLISH packets in flight, on the same MQTT
version. The script starts its own Mosquitto on a free loopback port with
``max_inflight_messages`` set to ``--window``, so that on MQTT 5 the Receive
Maximum of its CONNACK (20 if left unset) is the window too; tvpower's
window is the least of that, its ``max_in_flight`` (``--window``) and the
publisher's own limit, which ``--window`` may not exceed. The best run of
each client is compared, and the script exits with status 1 when tvpower
reaches less than 80 % of the bare client's intents per second.

``cpu`` is the CPU time of this process in the best-timed stretch: on a busy
machine it shows how much of the wall-clock time was the client's own work.
For where tvpower's time goes, ``Publisher.desired`` (the engine, timeline
built) and a dry-run ``reconcile`` (everything but MQTT) are timed alone.

Run: ``.venv/bin/python bench/throughput.py [--clients N] [--runs N]
[--protocol 5|3.1.1] [--window N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from report import positive, table

from tvpower.clock import SteppedClock
from tvpower.errors import BrokerError
from tvpower.mqtt import BrokerAddress, MqttPublisher
from tvpower.publisher import Publisher, PublisherOptions
from tvpower.schedule import Schedule, load_schedule

GROUPS = 100
# The instant published: inside the second event of even groups only.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
EVENTS = (("08:00", "09:00"), ("09:30", "11:00"), ("14:00", "15:30"))
LATE_START = "10:30"  # of odd groups' second event
REQUIRED_RATIO = 0.80
MAX_WINDOW = 1024
DEFAULT_WINDOW = 64  # MqttPublisher's default max_in_flight
# Every wait is bounded: the broker's start and stop, CONNACK, all PUBACKs.
BROKER_START_SECONDS = 5.0
BROKER_STOP_SECONDS = 5.0
CONNECT_SECONDS = 10.0
PUBLISH_SECONDS = 120.0


@dataclass(frozen=True)
class Message:
    """One retained PUBLISH as tvpower hands it to its MQTT seam."""

    topic: str
    payload: bytes
    message_expiry_seconds: int | None


@dataclass(frozen=True)
class Setup:
    """What both clients share: broker, MQTT version, window, intents."""

    address: BrokerAddress
    protocol: str
    window: int
    schedule: Schedule
    messages: list[Message]


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds, and CPU seconds of this process."""

    wall: float
    cpu: float


class Stopwatch:
    """Wall-clock and CPU time of the ``with`` block, in :attr:`timing`."""

    timing = Timing(0.0, 0.0)

    def __enter__(self) -> Stopwatch:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.timing = Timing(
            time.perf_counter() - self._wall, time.process_time() - self._cpu
        )


# -- the broker ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def mosquitto(directory: Path, window: int) -> Iterator[BrokerAddress]:
    """A Mosquitto on 127.0.0.1 with ``window`` as its in-flight limit."""
    port = free_port()
    config = directory / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        # Also the Receive Maximum of its CONNACK on MQTT 5.
        f"max_inflight_messages {window}",
        f"log_dest file {directory / 'mosquitto.log'}",
    ]
    if os.geteuid() == 0:
        # As root, Mosquitto drops to a user that cannot read our temp dir.
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        address = BrokerAddress("127.0.0.1", port)
        wait_until_listening(address, process)
        yield address
    finally:
        stop(process)


def wait_until_listening(
    address: BrokerAddress, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + BROKER_START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((address.host, address.port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(
        f"mosquitto did not listen on {address} within {BROKER_START_SECONDS:g} s"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=BROKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=BROKER_STOP_SECONDS)


# -- the fleet and its intents ------------------------------------------------


def write_schedule(path: Path, clients: int) -> None:
    """``clients`` clients spread over up to GROUPS groups, three events each."""
    groups = min(GROUPS, clients)
    members: dict[str, list[str]] = {f"g{g:03d}": [] for g in range(groups)}
    for c in range(clients):
        group = f"g{c * groups // clients:03d}"
        members[group].append(f"{group}-c{c:05d}")

    day = NOW.date().isoformat()
    events = [
        {
            "id": f"{group}-e{e}",
            "group": group,
            "start": f"{day}T{LATE_START if g % 2 and e == 1 else start}:00Z",
            "end": f"{day}T{end}:00Z",
        }
        for g, group in enumerate(members)
        for e, (start, end) in enumerate(EVENTS)
    ]
    document = {
        "timezone": "Europe/Berlin",
        "groups": {g: {"clients": c} for g, c in members.items()},
        "events": events,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))


class Recorder:
    """An IntentSink that keeps every PUBLISH and acknowledges it at once."""

    connected = True

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.disconnected = asyncio.Event()  # never set
        self.messages: list[Message] = []

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes, int | None]]
    ) -> list[tuple[BrokerError | None, float]]:
        self.messages.extend(Message(*message) for message in messages)
        return [(None, 0.0)] * len(messages)


def messages_of(schedule: Schedule, protocol: str) -> list[Message]:
    """The PUBLISH packets of a full reconcile at NOW, as tvpower sends them.

    The clock stands still, so every later reconcile sends the same bytes.
    """
    recorder = Recorder(protocol)
    publisher = Publisher(schedule, SteppedClock(NOW))
    asyncio.run(publisher.reconcile(recorder))
    return recorder.messages


# -- tvpower ------------------------------------------------------------------


@asynccontextmanager
async def connected(setup: Setup, client_id: str) -> AsyncIterator[MqttPublisher]:
    sink = MqttPublisher(
        setup.address,
        client_id=client_id,
        timeout=CONNECT_SECONDS,
        max_in_flight=setup.window,
    )
    if setup.protocol == "5":
        async with sink:
            yield sink
        return
    # MqttPublisher tries MQTT 5 first, which Mosquitto accepts: connect
    # with 3.1.1 the way its fallback does.
    await sink._connect(aiomqtt.ProtocolVersion.V311)
    try:
        yield sink
    finally:
        await sink.__aexit__(None, None, None)


async def publish_with_tvpower(setup: Setup, run: int) -> Timing:
    """One full reconcile of a fresh publisher, until the last PUBACK."""
    async with connected(setup, f"bench-tvpower-{run}") as sink:
        if sink.protocol != setup.protocol:
            raise RuntimeError(f"tvpower connected with MQTT {sink.protocol}")
        publisher = Publisher(setup.schedule, SteppedClock(NOW))
        with Stopwatch() as watch:
            await asyncio.wait_for(publisher.reconcile(sink), PUBLISH_SECONDS)

    acknowledged = publisher.metrics.registry.get_sample_value(
        "tvpower_publishes_total", {"outcome": "acknowledged"}
    )
    if acknowledged != len(setup.messages):
        raise RuntimeError(
            f"tvpower: {acknowledged} of {len(setup.messages)} PUBLISH acknowledged"
        )
    return watch.timing


def engine_alone(schedule: Schedule) -> float:
    """Seconds of ``desired()`` on a fresh publisher: the timeline built too."""
    publisher = Publisher(schedule, SteppedClock(NOW))
    with Stopwatch() as watch:
        publisher.desired(NOW)
    return watch.timing.wall


async def dry_run(schedule: Schedule) -> float:
    """Seconds of a dry-run reconcile: payloads, records and metrics, no MQTT."""
    options = PublisherOptions(dry_run=True)
    publisher = Publisher(schedule, SteppedClock(NOW), options=options)
    with Stopwatch() as watch:
        await publisher.reconcile(None)
    return watch.timing.wall


# -- the bare client ----------------------------------------------------------


class BareClient:
    """paho-mqtt in this thread; paho holds back PUBLISH packets beyond the window."""

    def __init__(self, setup: Setup, client_id: str) -> None:
        self.setup = setup
        version = paho.MQTTv5 if setup.protocol == "5" else paho.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version
        )
        self.client.max_inflight_messages_set(setup.window)
        self.client.on_connect = self._on_connack
        self.client.on_publish = self._on_puback
        self.connack: ReasonCode | None = None
        self.receive_maximum: int | None = None
        self.pubacks = 0
        self.refusals: list[str] = []

    def connect(self) -> None:
        self.client.connect(self.setup.address.host, self.setup.address.port)
        self._loop_until(lambda: self.connack is not None, CONNECT_SECONDS, "CONNACK")
        if self.connack is not None and self.connack.is_failure:
            raise RuntimeError(f"bare client: CONNACK reason_code {self.connack}")

    def publish_all(self) -> Timing:
        """From the first PUBLISH to the last PUBACK."""
        messages = self.setup.messages
        properties = self._properties()
        with Stopwatch() as watch:
            for m in messages:
                self.client.publish(
                    m.topic,
                    m.payload,
                    qos=1,
                    retain=True,
                    properties=properties.get(m.message_expiry_seconds),
                )
            self._loop_until(
                lambda: self.pubacks >= len(messages), PUBLISH_SECONDS, "last PUBACK"
            )
        if self.refusals:
            raise RuntimeError(f"bare client: PUBACK {self.refusals[0]}")
        return watch.timing

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop(timeout=0.1)

    def _properties(self) -> dict[int | None, Properties]:
        """One PUBLISH Properties per expiry, made before the clock runs (MQTT 5)."""
        if self.setup.protocol != "5":
            return {}
        made: dict[int | None, Properties] = {}
        for seconds in {m.message_expiry_seconds for m in self.setup.messages}:
            # paho's Properties has no type hints.
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = seconds
            made[seconds] = properties
        return made

    def _loop_until(self, done: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare client: no {what} within {seconds:g} s")
            rc = self.client.loop(timeout=0.1)
            if rc != paho.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"bare client: {paho.error_string(rc)}")

    def _on_connack(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connack = reason_code
        self.receive_maximum = getattr(properties, "ReceiveMaximum", None)

    def _on_puback(
        self,
        client: paho.Client,
        userdata: Any,
        packet_id: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self.pubacks += 1
        if reason_code.is_failure:
            self.refusals.append(f"reason_code {reason_code} for packet_id {packet_id}")


def publish_with_bare_client(setup: Setup, run: int) -> Timing:
    bare = BareClient(setup, f"bench-bare-{run}")
    bare.connect()
    try:
        check_window(setup, bare.receive_maximum)
        return bare.publish_all()
    finally:
        bare.disconnect()


def check_window(setup: Setup, receive_maximum: int | None) -> None:
    """Refuse to measure unless the broker grants the window (MQTT 5)."""
    expected = setup.window if setup.protocol == "5" else None
    if receive_maximum != expected:
        raise RuntimeError(
            f"CONNACK Receive Maximum: expected {expected}, got {receive_maximum}"
        )


# -- the runs and the report --------------------------------------------------


def alternate(setup: Setup, runs: int) -> tuple[list[Timing], list[Timing]]:
    """Each run of tvpower and of the bare client, taking turns."""
    # One round unmeasured: warm caches, and a full retained store for both.
    asyncio.run(publish_with_tvpower(setup, 0))
    publish_with_bare_client(setup, 0)
    tvpower: list[Timing] = []
    bare: list[Timing] = []
    for run in range(1, runs + 1):
        tvpower.append(asyncio.run(publish_with_tvpower(setup, run)))
        bare.append(publish_with_bare_client(setup, run))
    return tvpower, bare


def where_time_goes(schedule: Schedule, runs: int) -> str:
    engine = min(engine_alone(schedule) for _ in range(runs))
    dry = min(asyncio.run(dry_run(schedule)) for _ in range(runs))
    return (
        f"tvpower without MQTT, best of {runs}: desired() {engine * 1e3:.0f} ms, "
        f"dry-run reconcile {dry * 1e3:.0f} ms"
    )


def row(name: str, timings: list[Timing], intents: int) -> list[str]:
    best = min(timings, key=lambda t: t.wall)
    return [
        name,
        *(f"{t.wall:.3f} s" for t in timings),
        f"{best.wall:.3f} s",
        f"{best.cpu:.3f} s",
        f"{intents / best.wall:,.0f}",
    ]


def report(setup: Setup, tvpower: list[Timing], bare: list[Timing]) -> float:
    """Print the table; return tvpower's intents per second over the bare's."""
    print(
        f"{len(setup.messages):,} intents of {len(setup.schedule.groups)} groups, "
        f"MQTT {setup.protocol}, QoS 1 retained, window {setup.window} in flight "
        f"(Mosquitto max_inflight_messages {setup.window}), "
        f"{len(tvpower)} runs each, taking turns"
    )
    header = ["client", *(f"run {i + 1}" for i in range(len(tvpower)))]
    header += ["best", "cpu", "intents/s"]
    n = len(setup.messages)
    print(table(header, [row("tvpower", tvpower, n), row("bare", bare, n)]))
    return min(t.wall for t in bare) / min(t.wall for t in tvpower)


def window(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WINDOW:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WINDOW}, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=positive, default=10_000)
    parser.add_argument("--runs", type=positive, default=3, help="runs of each")
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    parser.add_argument(
        "--window",
        type=window,
        default=DEFAULT_WINDOW,
        help="PUBLISH packets in flight, for both clients and the broker",
    )
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto not installed: apt-get install mosquitto")

    with tempfile.TemporaryDirectory(prefix="tvpower-bench-") as temp:
        directory = Path(temp)
        write_schedule(directory / "schedule.yaml", args.clients)
        schedule = load_schedule(directory / "schedule.yaml")
        messages = messages_of(schedule, args.protocol)
        with mosquitto(directory, args.window) as address:
            setup = Setup(address, args.protocol, args.window, schedule, messages)
            tvpower, bare = alternate(setup, args.runs)
    ratio = report(setup, tvpower, bare)
    print(where_time_goes(schedule, args.runs))

    verdict = "ok" if ratio >= REQUIRED_RATIO else "BELOW THE REQUIREMENT"
    print(f"tvpower / bare: {ratio:.2f} (required >= {REQUIRED_RATIO:.2f}): {verdict}")
    if ratio < REQUIRED_RATIO:
        sys.exit(1)


if __name__ == "__main__":
    main()
