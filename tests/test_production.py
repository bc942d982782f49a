"""Production-like runs: real publisher processes, a real Mosquitto, real subscribers.

Every test starts ``python -m tvpower.publish --broker ... --now T`` as a
process of its own against a Mosquitto on a free 127.0.0.1 port
(``persistence false``; some SIGTERM tests use no broker, a silent listener
or ``--dry-run`` instead), watches it with real MQTT subscribers, and kills
every process it started when it ends, whatever happens. ``--now`` fixes
the instant the publisher's clock starts at; from there it runs at real
speed, so the schedules below put their events a few seconds around ``T``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tvpower.intents import validate_payload
from tvpower.timeline import main as timeline_main

from .conftest import MOSQUITTO_MISSING, Mosquitto, collect_retained
from .watch import Watch, watching

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason=MOSQUITTO_MISSING
)

ROOT = Path(__file__).resolve().parent.parent
INTENTS = "infoscreen/+/power/intent"
#: The instant every publisher here starts its clock at (``--now``).
T = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
TTL_SECONDS = 600
CLIENTS = {"c1": "g1", "c2": "g1", "c3": "g2"}
_UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Python, pandas and the first schedule load: a publisher takes a second or
# two before its first publish.
_START_SECONDS = 30.0
_STOP_SECONDS = 5.0
# What the contract allows for an edit and for a reconnect to take effect.
_EDIT_SECONDS = 5.0
_RECONNECT_SECONDS = 5.0


def topic(client_id: str) -> str:
    return f"infoscreen/{client_id}/power/intent"


def z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: float) -> str:
    """``T`` plus ``seconds``, as the publisher writes instants."""
    return z(T + timedelta(seconds=seconds))


# -- schedules ---------------------------------------------------------------


def event(
    event_id: str,
    start: float,
    end: float,
    *,
    group: str | None = None,
    client: str | None = None,
    desired_state: str | None = None,
) -> dict[str, str]:
    """One event entry, its times in seconds after ``T``."""
    entry = {"id": event_id}
    if group is not None:
        entry["group"] = group
    if client is not None:
        entry["client"] = client
    entry |= {"start": at(start), "end": at(end)}
    if desired_state is not None:
        entry["desired_state"] = desired_state
    return entry


def write_schedule(path: Path, events: list[dict[str, str]]) -> None:
    """Two groups, three clients, UTC; replaced in one step, as editors save."""
    lines = [
        "timezone: UTC",
        f"ttl_seconds: {TTL_SECONDS}",
        "groups:",
        "  g1:",
        "    clients: [c1, c2]",
        "  g2:",
        "    clients: [c3]",
        "events:",
        # JSON flow mappings are YAML too.
        *(f"  - {json.dumps(e)}" for e in events),
    ]
    write_text_atomically(path, "\n".join(lines) + "\n")


def write_text_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def steady_events() -> list[dict[str, str]]:
    """No transition for an hour around T: g1 on, c2 overridden off, c3 off."""
    return [
        event("g1-day", -3600, 3600, group="g1"),
        event("c2-repair", -1800, 1800, client="c2", desired_state="off"),
    ]


def both_groups_on() -> list[dict[str, str]]:
    return [
        event("g1-day", -3600, 3600, group="g1"),
        event("g2-day", -3600, 3600, group="g2"),
    ]


# -- payload checks ----------------------------------------------------------


def check_payload(payload: dict[str, Any]) -> None:
    """The shipped schema, UTC ``Z`` instants, and an expiry after the issue."""
    validate_payload(payload)
    instants = [payload["issued_at"], payload["expires_at"]]
    if payload["event_window"] is not None:
        instants += [payload["event_window"]["start"], payload["event_window"]["end"]]
    for instant in instants:
        assert _UTC_Z.match(instant), f"not UTC with Z, whole seconds: {instant!r}"
    issued = datetime.fromisoformat(payload["issued_at"])
    expires = datetime.fromisoformat(payload["expires_at"])
    assert expires > issued, payload


def check_watch(watch: Watch) -> None:
    assert not watch.invalid, watch.invalid
    for message in watch.messages:
        check_payload(message.payload)


def retained_payloads(retained: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    payloads = {t: json.loads(p) for t, p in retained.items()}
    for payload in payloads.values():
        check_payload(payload)
    return payloads


# -- processes ---------------------------------------------------------------


@dataclass
class PublishProcess:
    """A running ``python -m tvpower.publish``; its stderr read as it comes."""

    process: subprocess.Popen[str]
    log: Path
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def records(self) -> list[dict[str, Any]]:
        records = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def stderr(self) -> str:
        return "".join(self.lines)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == name]

    def acknowledged(self) -> list[dict[str, Any]]:
        return [r for r in self.events("publish") if r["outcome"] == "acknowledged"]

    async def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        what: str,
        seconds: float,
    ) -> None:
        """Until ``predicate(records)`` holds; fail after ``seconds``."""
        deadline = time.monotonic() + seconds
        while not predicate(self.records()):
            if self.process.poll() is not None:
                await asyncio.to_thread(self._join)
                pytest.fail(
                    f"publisher exited ({self.process.returncode}) before {what}:\n"
                    + self.stderr()
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {seconds:g} s:\n{self.stderr()}")
            await asyncio.sleep(0.05)

    async def wait_for_acknowledged(self, count: int, seconds: float) -> None:
        await self.wait_for(
            lambda _: len(self.acknowledged()) >= count,
            f"{count} acknowledged publishes",
            seconds,
        )

    async def terminate(self, seconds: float = _STOP_SECONDS) -> tuple[int, float]:
        """SIGTERM; the exit status and how long the process took to exit."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.to_thread(self.process.wait, seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"publisher still running {seconds:g} s after SIGTERM:\n"
                + self.stderr()
            )
        took = time.monotonic() - began
        await asyncio.to_thread(self._join)
        return status, took

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, _STOP_SECONDS)
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        if self.reader is not None:
            self.reader.join(timeout=_STOP_SECONDS)


def _read_lines(process: subprocess.Popen[str], lines: list[str], log: Path) -> None:
    assert process.stderr is not None
    with log.open("w", encoding="utf-8") as out:
        for line in process.stderr:
            lines.append(line)
            out.write(line)
            out.flush()


def _spawn_publisher(
    directory: Path, schedule: Path, broker_port: int, now: datetime, *extra: str
) -> PublishProcess:
    """``python -m tvpower.publish --broker ... --now ... --log-format json``."""
    # The test chooses every option; none may leak in from the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TVPOWER_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tvpower.publish",
            "--schedule",
            str(schedule),
            "--broker",
            f"mqtt://127.0.0.1:{broker_port}",
            "--now",
            z(now),
            "--log-format",
            "json",
            *extra,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    log = directory / f"publish-{process.pid}.log"
    publish = PublishProcess(process, log)
    publish.reader = threading.Thread(
        target=_read_lines, args=(process, publish.lines, log), daemon=True
    )
    publish.reader.start()
    return publish


def _reap(started: list[PublishProcess]) -> None:
    for publish in started:
        if publish.process.poll() is None:
            publish.process.kill()
        publish.process.wait(timeout=_STOP_SECONDS)
        publish._join()


@pytest.fixture
def start_publisher(tmp_path: Path) -> Iterator[Callable[..., PublishProcess]]:
    """Start publishers against a broker on 127.0.0.1; all are killed at teardown."""
    started: list[PublishProcess] = []

    def start(
        schedule: Path, broker_port: int, now: datetime, *extra: str
    ) -> PublishProcess:
        publish = _spawn_publisher(tmp_path, schedule, broker_port, now, *extra)
        started.append(publish)
        return publish

    yield start
    _reap(started)


@dataclass
class RestartableMosquitto:
    """A Mosquitto that can be killed and started again, empty, on its port."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> float:
        """Start it; the monotonic time at which it accepted a connection."""
        self.starts += 1
        name = f"mosquitto-{self.port}-{self.starts}"
        config = self.directory / f"{name}.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.directory / name}.log",
            "allow_anonymous true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return time.monotonic()
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"mosquitto did not listen on 127.0.0.1:{self.port}")

    def kill(self) -> None:
        """SIGKILL: the broker and its retained store are gone at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=_STOP_SECONDS)


@pytest.fixture
def restartable_mosquitto(
    tmp_path: Path, free_port: int
) -> Iterator[RestartableMosquitto]:
    broker = RestartableMosquitto(free_port, tmp_path)
    broker.start()
    yield broker
    broker.kill()


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- an MQTT 5 subscriber ----------------------------------------------------


@dataclass(frozen=True)
class V5Message:
    topic: str
    payload: dict[str, Any]
    retain: bool
    message_expiry_interval: int | None


@contextlib.asynccontextmanager
async def watching_v5(port: int) -> AsyncIterator[list[V5Message]]:
    """An MQTT 5 subscriber to every intent topic, recording as messages come."""
    messages: list[V5Message] = []
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"watch-v5-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    )

    async def record() -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            expiry = getattr(message.properties, "MessageExpiryInterval", None)
            messages.append(
                V5Message(
                    message.topic.value,
                    json.loads(message.payload),
                    bool(message.retain),
                    expiry,
                )
            )

    async with client:
        await client.subscribe(INTENTS, qos=1)
        task = asyncio.create_task(record())
        try:
            yield messages
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds:g} s")
        await asyncio.sleep(0.05)


def _after(watch: Watch, mark: int, client_id: str) -> list[dict[str, Any]]:
    return [m.payload for m in watch.messages[mark:] if m.topic == topic(client_id)]


def _metrics(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
    return text


def _schedule_loads(text: str, outcome: str) -> str | None:
    prefix = f'tvpower_schedule_loads_total{{outcome="{outcome}"}} '
    return next((line for line in text.splitlines() if line.startswith(prefix)), None)


# -- 1. back-to-back windows (7 audits its log) ----------------------------


@dataclass
class BackToBackRun:
    schedule: Path
    watch: Watch
    publisher: PublishProcess
    status: int


@pytest.fixture(scope="module")
def back_to_back(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackToBackRun]:
    """One run of touching windows, shared by the tests that read it (~25 s).

    Events a [T+5s, T+10s) and b [T+10s, T+20s) for g1, g2 on all along; a
    subscriber is there before the publisher starts at T, and until T+21s.
    """
    directory = tmp_path_factory.mktemp("back-to-back")
    schedule = directory / "schedule.yaml"
    write_schedule(
        schedule,
        [
            event("a", 5, 10, group="g1"),
            event("b", 10, 20, group="g1"),
            event("g2-day", -3600, 3600, group="g2"),
        ],
    )
    broker = RestartableMosquitto(_free_loopback_port(), directory)
    started: list[PublishProcess] = []
    broker.start()
    try:

        async def run() -> BackToBackRun:
            async with asyncio.timeout(60):
                async with watching(broker.port) as watch:
                    publisher = _spawn_publisher(directory, schedule, broker.port, T)
                    started.append(publisher)
                    # At T: 3 intents; T+5s: c1, c2 on; T+20s: c1, c2 off.
                    await watch.wait_for(7, seconds=_START_SECONDS + 20)
                    await asyncio.sleep(1.0)  # and nothing more
                status, _ = await publisher.terminate()
            return BackToBackRun(schedule, watch, publisher, status)

        yield asyncio.run(run())
    finally:
        _reap(started)
        broker.kill()


def test_back_to_back_windows_never_switch_off_in_between(
    back_to_back: BackToBackRun,
) -> None:
    watch = back_to_back.watch
    assert back_to_back.status == 0, back_to_back.publisher.stderr()
    check_watch(watch)
    assert all(not m.retain for m in watch.messages)
    for client_id in ("c1", "c2"):
        received = watch.for_client(client_id)
        states = [p["power"]["desired_state"] for p in received]
        assert states == ["off", "on", "off"], received
        first, on, off = received
        assert at(0) <= first["issued_at"] <= at(2)
        # On from T+5s, one window across the touching events, and the
        # next intent is not before T+20s.
        assert at(5) <= on["issued_at"] <= at(7)
        assert on["event_window"] == {"start": at(5), "end": at(20)}
        assert on["power"]["reason"] == "event_window_active"
        assert at(20) <= off["issued_at"] <= at(22)
        assert off["power"]["reason"] == "no_active_event"
        assert off["event_window"] is None
        assert len({p["intent_id"] for p in received}) == 3
    (c3,) = watch.for_client("c3")
    assert c3["power"]["desired_state"] == "on"
    assert c3["event_window"] == {"start": at(-3600), "end": at(3600)}


# -- 7. the log of run 1, audited --------------------------------------------


def test_the_log_of_the_back_to_back_run_matches_the_schedule(
    back_to_back: BackToBackRun,
) -> None:
    log = back_to_back.publisher.log
    assert len(back_to_back.publisher.acknowledged()) == 7
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tvpower.timeline",
            "--from-log",
            str(log),
            "--schedule",
            str(back_to_back.schedule),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The CSV header alone: no stretch where the log and the engine differ.
    assert len(result.stdout.splitlines()) == 1, result.stdout
    assert "no differences" in result.stderr
    assert "Traceback" not in result.stderr


# -- 2. SIGKILL and restart --------------------------------------------------


async def test_restart_after_sigkill_republishes_the_same_intent_ids(
    tmp_path: Path, mosquitto_broker: Mosquitto, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    port = mosquitto_broker.port
    async with asyncio.timeout(60):
        began = time.monotonic()
        first = start_publisher(schedule, port, T)
        await first.wait_for_acknowledged(3, _START_SECONDS)
        before = retained_payloads(await collect_retained(port, INTENTS))
        await first.kill()
        assert first.process.returncode == -signal.SIGKILL

        elapsed = int(time.monotonic() - began) + 1
        second = start_publisher(schedule, port, T + timedelta(seconds=elapsed))
        await second.wait_for_acknowledged(3, _START_SECONDS)
        after = retained_payloads(await collect_retained(port, INTENTS))
        status, _ = await second.terminate()
    assert status == 0, second.stderr()

    assert set(before) == set(after) == {topic(c) for c in CLIENTS}
    for name in before:
        assert after[name]["intent_id"] == before[name]["intent_id"], name
        # What the fresh subscriber got is the second process's publish.
        assert after[name]["issued_at"] >= at(elapsed), after[name]
    assert before[topic("c1")]["power"]["desired_state"] == "on"
    assert before[topic("c2")]["power"]["reason"] == "client_override_off"
    assert before[topic("c3")]["power"]["reason"] == "no_active_event"
    assert {r["intent_id"] for r in second.acknowledged()} == {
        p["intent_id"] for p in before.values()
    }


# -- 3. the broker killed and restarted empty --------------------------------


async def test_broker_restarted_empty_gets_every_intent_again_within_5_s(
    tmp_path: Path,
    restartable_mosquitto: RestartableMosquitto,
    start_publisher: Any,
) -> None:
    broker = restartable_mosquitto
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    async with asyncio.timeout(60):
        publisher = start_publisher(schedule, broker.port, T)
        await publisher.wait_for_acknowledged(3, _START_SECONDS)
        before = retained_payloads(await collect_retained(broker.port, INTENTS))
        assert len(before) == 3

        broker.kill()
        await asyncio.sleep(1.0)
        back = broker.start()
        # A fresh subscriber on the new, empty broker.
        async with watching(broker.port) as watch:
            with contextlib.suppress(TimeoutError):
                await watch.wait_for(3, seconds=_RECONNECT_SECONDS)
            took = time.monotonic() - back
        if len(watch.messages) < 3:
            pytest.fail(
                f"{len(watch.messages)} of 3 intents on the restarted broker "
                f"{took:.1f} s after it accepted connections; "
                f"publisher log:\n{publisher.stderr()}"
            )
        print(f"intents back on the restarted broker after {took:.2f} s")
        after = retained_payloads(await collect_retained(broker.port, INTENTS))
        status, _ = await publisher.terminate()
    assert status == 0, publisher.stderr()

    check_watch(watch)
    assert set(after) == set(before)
    for name in before:
        assert after[name]["intent_id"] == before[name]["intent_id"], name
    assert publisher.events("connected")[1:], "no reconnect logged"


# -- 4. an edit cancels one group's running event ----------------------------


async def test_cancelling_one_groups_event_publishes_off_to_that_group_only(
    tmp_path: Path, mosquitto_broker: Mosquitto, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, both_groups_on())
    port = mosquitto_broker.port
    async with asyncio.timeout(60):
        publisher = start_publisher(schedule, port, T)
        await publisher.wait_for_acknowledged(3, _START_SECONDS)
        async with watching(port) as watch:
            await watch.wait_for(3)  # the retained burst
            await asyncio.sleep(0.5)
            before = {c: watch.for_client(c)[-1] for c in CLIENTS}
            mark = len(watch.messages)

            edited = time.monotonic()
            write_schedule(schedule, [event("g2-day", -3600, 3600, group="g2")])
            await _until(
                lambda: bool(_after(watch, mark, "c1") and _after(watch, mark, "c2")),
                "off intents for c1 and c2",
                _EDIT_SECONDS,
            )
            took = time.monotonic() - edited
            # The rest of the 5 s: c3 must hear nothing at all.
            await asyncio.sleep(max(0.0, edited + _EDIT_SECONDS - time.monotonic()))
        status, _ = await publisher.terminate()
    assert status == 0, publisher.stderr()
    print(f"off intents after the edit in {took:.2f} s")

    check_watch(watch)
    assert all(before[c]["power"]["desired_state"] == "on" for c in CLIENTS)
    for client_id in ("c1", "c2"):
        (off,) = _after(watch, mark, client_id)
        assert off["power"]["desired_state"] == "off"
        assert off["power"]["reason"] == "no_active_event"
        assert off["event_window"] is None
        assert off["intent_id"] != before[client_id]["intent_id"]
    assert _after(watch, mark, "c3") == []
    assert all(not m.retain for m in watch.messages[mark:])


# -- 5. a bad edit ------------------------------------------------------------


async def _rejected(
    publisher: Any, watch: Any, mark: int, metrics_port: int, *, count: int
) -> None:
    """The ``count``-th bad edit is logged and counted, and publishes nothing."""
    await publisher.wait_for(
        lambda _: len(publisher.events("schedule rejected")) >= count,
        f"schedule rejected record number {count}",
        _EDIT_SECONDS,
    )
    await asyncio.sleep(1.0)
    assert watch.messages[mark:] == []
    metrics = await asyncio.to_thread(_metrics, metrics_port)
    assert _schedule_loads(metrics, "rejected") == (
        f'tvpower_schedule_loads_total{{outcome="rejected"}} {count:.1f}'
    ), metrics


async def test_a_bad_edit_is_rejected_logged_counted_and_a_good_one_follows(
    tmp_path: Path, mosquitto_broker: Mosquitto, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, both_groups_on())
    port = mosquitto_broker.port
    metrics_port = _free_loopback_port()
    async with asyncio.timeout(60):
        publisher = start_publisher(
            schedule, port, T, "--metrics-port", str(metrics_port)
        )
        await publisher.wait_for_acknowledged(3, _START_SECONDS)
        async with watching(port) as watch:
            await watch.wait_for(3)
            await asyncio.sleep(0.5)
            before = {c: watch.for_client(c)[-1] for c in CLIENTS}
            mark = len(watch.messages)

            # The end before the start.
            write_schedule(
                schedule,
                [
                    event("g1-day", -3600, -7200, group="g1"),
                    event("g2-day", -3600, 3600, group="g2"),
                ],
            )
            await _rejected(publisher, watch, mark, metrics_port, count=1)

            # Not YAML at all.
            write_text_atomically(schedule, "timezone: UTC\ngroups: {g1: [\n")
            await _rejected(publisher, watch, mark, metrics_port, count=2)

            # A good edit: g1's event cancelled.
            edited = time.monotonic()
            write_schedule(schedule, [event("g2-day", -3600, 3600, group="g2")])
            await _until(
                lambda: bool(_after(watch, mark, "c1") and _after(watch, mark, "c2")),
                "off intents after the good edit",
                _EDIT_SECONDS,
            )
            took = time.monotonic() - edited
            await asyncio.sleep(0.5)
        metrics = await asyncio.to_thread(_metrics, metrics_port)
        status, _ = await publisher.terminate()
    assert status == 0, publisher.stderr()
    print(f"good edit after two bad ones picked up in {took:.2f} s")

    check_watch(watch)
    end_first, invalid_yaml = publisher.events("schedule rejected")
    assert end_first["level"] == "error"
    error = end_first["error"]
    assert error.startswith(f"{schedule}: ")
    assert "events[0] (id 'g1-day')" in error
    assert "field 'end'" in error
    assert str(schedule) in invalid_yaml["error"]
    assert "invalid YAML" in invalid_yaml["error"]
    assert _schedule_loads(metrics, "accepted") == (
        'tvpower_schedule_loads_total{outcome="accepted"} 2.0'
    ), metrics
    for client_id in ("c1", "c2"):
        (off,) = _after(watch, mark, client_id)
        assert off["power"]["desired_state"] == "off"
        assert off["intent_id"] != before[client_id]["intent_id"]
    assert _after(watch, mark, "c3") == []


# -- 6. MQTT 5: Message Expiry Interval --------------------------------------


async def test_mqtt5_subscribers_see_a_message_expiry_interval_within_the_ttl(
    tmp_path: Path, mosquitto_broker: Mosquitto, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    port = mosquitto_broker.port
    async with asyncio.timeout(60):
        async with watching_v5(port) as live:
            publisher = start_publisher(schedule, port, T)
            await _until(lambda: len(live) >= 3, "3 live intents", _START_SECONDS)
        assert publisher.events("connected")[0]["protocol"] == "5"
        async with watching_v5(port) as retained:
            await _until(lambda: len(retained) >= 3, "3 retained intents", 5.0)
        status, _ = await publisher.terminate()
    assert status == 0, publisher.stderr()

    assert [m.retain for m in live] == [False] * 3
    assert [m.retain for m in retained] == [True] * 3
    assert {m.topic for m in live} == {m.topic for m in retained}
    assert {m.topic for m in live} == {topic(c) for c in CLIENTS}
    for message in [*live, *retained]:
        check_payload(message.payload)
        interval = message.message_expiry_interval
        assert interval is not None, message
        assert 0 < interval <= TTL_SECONDS, message
        issued = datetime.fromisoformat(message.payload["issued_at"])
        expires = datetime.fromisoformat(message.payload["expires_at"])
        assert expires - issued == timedelta(seconds=TTL_SECONDS)
        # The broker may only drop the message before its payload expires.
        assert interval <= (expires - issued).total_seconds()


# -- 8. SIGTERM while the broker is down -------------------------------------


async def test_sigterm_after_the_broker_died_exits_0_quickly(
    tmp_path: Path,
    restartable_mosquitto: RestartableMosquitto,
    start_publisher: Any,
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    async with asyncio.timeout(60):
        publisher = start_publisher(schedule, restartable_mosquitto.port, T)
        await publisher.wait_for_acknowledged(3, _START_SECONDS)
        restartable_mosquitto.kill()
        await asyncio.sleep(1.5)
        status, took = await publisher.terminate()
    print(f"exited {took:.2f} s after SIGTERM")
    _check_clean_exit(publisher, status)


async def test_sigterm_while_reconnecting_exits_0_quickly(
    tmp_path: Path, free_port: int, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    async with asyncio.timeout(60):
        # Nothing listens on free_port: connections are refused.
        publisher = start_publisher(schedule, free_port, T)
        await publisher.wait_for(
            lambda _: len(publisher.events("broker unavailable")) >= 2,
            "second 'broker unavailable' record",
            _START_SECONDS,
        )
        status, took = await publisher.terminate()
    print(f"exited {took:.2f} s after SIGTERM")
    _check_clean_exit(publisher, status)
    retry = [r["retry_in_seconds"] for r in publisher.events("broker unavailable")]
    assert retry[:2] == [1.0, 2.0]


async def test_sigterm_while_connecting_to_a_silent_broker_exits_0_quickly(
    tmp_path: Path, free_port: int, start_publisher: Any
) -> None:
    """A hung broker (or a host that drops packets): TCP up, no CONNACK ever."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    server = await asyncio.start_server(hold, "127.0.0.1", free_port)
    try:
        async with asyncio.timeout(60):
            publisher = start_publisher(schedule, free_port, T)
            await _until(lambda: bool(held), "CONNECT attempt", _START_SECONDS)
            await asyncio.sleep(1.0)
            status, took = await publisher.terminate(15.0)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    print(f"exited {took:.2f} s after SIGTERM")
    assert took <= _STOP_SECONDS, (
        f"exited {took:.2f} s after SIGTERM:\n{publisher.stderr()}"
    )
    _check_clean_exit(publisher, status)


async def test_sigterm_in_a_dry_run_logs_where_the_log_ends(
    tmp_path: Path, free_port: int, start_publisher: Any
) -> None:
    schedule = tmp_path / "schedule.yaml"
    write_schedule(schedule, steady_events())
    async with asyncio.timeout(60):
        # A dry run connects to nothing: nothing listens on free_port.
        publisher = start_publisher(schedule, free_port, T, "--dry-run")
        await publisher.wait_for(
            lambda _: bool(publisher.events("publish")), "first publish", _START_SECONDS
        )
        status, _ = await publisher.terminate()
    _check_clean_exit(publisher, status)
    assert {r["outcome"] for r in publisher.events("publish")} == {"dry_run"}

    # The timeline rebuilt from the log runs to the stop, not to the last publish.
    out = io.StringIO()
    assert timeline_main(["--from-log", str(publisher.log)], out=out) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["client_id"] for r in rows} == set(CLIENTS)
    assert {r["end"] for r in rows} == {publisher.events("stopped")[-1]["at"]}


def _check_clean_exit(publisher: PublishProcess, status: int) -> None:
    stderr = publisher.stderr()
    assert status == 0, stderr
    assert "Traceback" not in stderr
    # --log-format json: every line on stderr is one JSON record.
    for line in publisher.lines:
        record = json.loads(line)
        assert "exception" not in record, record
    stopped = publisher.events("stopped")
    assert stopped, stderr
    # Where the log ends, on the publisher's clock, for the audit.
    assert datetime.fromisoformat(stopped[-1]["at"]).tzinfo is not None
