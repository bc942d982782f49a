"""The entry points as a user runs them: real processes, a real subscriber."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tvpower.intents import validate_payload
from tvpower.timeline import main as timeline_main

from .watch import watching

ROOT = Path(__file__).resolve().parent.parent
MAKERSPACE = ROOT / "scenarios" / "makerspace-potsdam.yaml"


def _timeline_csv(*args: str) -> list[dict[str, str]]:
    out = io.StringIO()
    assert timeline_main(["--schedule", str(MAKERSPACE), *args], out=out) == 0
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_timeline_shows_one_on_segment_across_back_to_back_sessions() -> None:
    rows = _timeline_csv(
        "--from", "2019-03-05T00:00:00Z", "--to", "2019-03-06T00:00:00Z"
    )
    for client in ("machbar-entrance", "machbar-hall"):
        mine = [r for r in rows if r["client_id"] == client]
        assert [(r["start"], r["end"], r["desired_state"]) for r in mine] == [
            ("2019-03-05T00:00:00Z", "2019-03-05T13:00:00Z", "off"),
            ("2019-03-05T13:00:00Z", "2019-03-05T20:00:00Z", "on"),
            ("2019-03-05T20:00:00Z", "2019-03-06T00:00:00Z", "off"),
        ]
        assert {r["group_id"] for r in mine} == {"machbar"}
        assert mine[1]["reason"] == "event_window_active"


def test_timeline_accepts_local_wall_time_in_the_schedule_zone() -> None:
    utc = _timeline_csv(
        "--from", "2019-03-05T13:00:00Z", "--to", "2019-03-05T20:00:00Z"
    )
    local = _timeline_csv("--from", "2019-03-05T14:00", "--to", "2019-03-05T21:00")
    assert utc == local


def test_timeline_rejects_a_bad_instant_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = timeline_main(
        ["--schedule", str(MAKERSPACE), "--from", "yesterday", "--to", "2019-03-06"]
    )
    assert status == 2
    assert capsys.readouterr().err == (
        "tvpower.timeline: error: --from: expected an ISO 8601 instant such as "
        "2019-03-05T17:59:50Z, got 'yesterday'\n"
    )


def test_publish_with_a_bad_schedule_exits_2_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("timezone: Mars/Olympus\ngroups: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tvpower.publish", "--schedule", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"tvpower.publish: error: {bad}: ")
    assert "Traceback" not in result.stderr


@pytest.fixture
def publish_process(free_port: int) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Starts ``python -m tvpower.publish``; the test passes the arguments."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tvpower.publish",
                "--schedule",
                str(MAKERSPACE),
                "--listen",
                f"127.0.0.1:{free_port}",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        return process

    yield start, free_port  # type: ignore[misc]
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _wait_for_url(process: subprocess.Popen[str], port: int) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line == f"embedded MQTT broker: mqtt://127.0.0.1:{port}\n"


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


async def test_publish_replays_the_makerspace_evening(publish_process) -> None:  # type: ignore[no-untyped-def]
    start, port = publish_process
    process = start("--now", "2019-03-05T17:59:50Z")
    _wait_for_url(process, port)
    async with watching(port) as watch:
        await watch.wait_for(2, seconds=20)
    _stop(process)

    for client in ("machbar-entrance", "machbar-hall"):
        payload, *copies = watch.for_client(client)
        assert all(copy == payload for copy in copies)
        validate_payload(payload)
        assert payload["power"]["desired_state"] == "on"
        assert payload["event_window"] == {
            "start": "2019-03-05T13:00:00Z",
            "end": "2019-03-05T20:00:00Z",
        }
        assert "2019-03-05T17:59:50Z" <= payload["issued_at"] < "2019-03-05T18:01:00Z"


async def test_publish_on_the_wall_clock_agrees_with_timeline(publish_process) -> None:  # type: ignore[no-untyped-def]
    start, port = publish_process
    process = start()
    _wait_for_url(process, port)
    async with watching(port) as watch:
        await watch.wait_for(2, seconds=20)
    _stop(process)

    now = datetime.now(UTC).replace(microsecond=0)
    rows = _timeline_csv(
        "--from",
        (now - timedelta(minutes=5)).isoformat(),
        "--to",
        (now + timedelta(minutes=1)).isoformat(),
    )
    for client in ("machbar-entrance", "machbar-hall"):
        payload, *copies = watch.for_client(client)
        assert all(copy == payload for copy in copies)
        validate_payload(payload)
        issued = payload["issued_at"]
        (row,) = [
            r
            for r in rows
            if r["client_id"] == client and r["start"] <= issued < r["end"]
        ]
        assert payload["power"]["desired_state"] == row["desired_state"]
        assert payload["power"]["reason"] == row["reason"]


def test_timeline_range_is_checked_in_utc_across_a_dst_gap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 02:30 does not exist on 2019-03-31 in Berlin: it means 01:30Z, after
    # 03:00 local (01:00Z), however the wall times compare.
    status = timeline_main(
        [
            "--schedule",
            str(MAKERSPACE),
            "--from",
            "2019-03-31T02:30",
            "--to",
            "2019-03-31T03:00",
        ]
    )
    assert status == 2
    assert capsys.readouterr().err == (
        "tvpower.timeline: error: --to must be after --from, got --from "
        "2019-03-31T01:30:00Z and --to 2019-03-31T01:00:00Z\n"
    )
