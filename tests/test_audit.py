"""Rebuilding each client's intent timeline from the publisher's own log.

The logs here are written by the real publisher against the embedded broker,
captured the way ``python -m tvpower.publish`` writes them when stderr is
not a terminal: one JSON line per publish attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio

from tvpower.audit import compare, read_publish_log, rebuild
from tvpower.broker import EmbeddedBroker
from tvpower.cli import JsonFormatter
from tvpower.clock import SteppedClock
from tvpower.engine import compute_timeline
from tvpower.errors import BrokerError, UsageError
from tvpower.mqtt import MqttPublisher, parse_broker_url
from tvpower.publisher import IntentSink, Publisher, PublisherOptions
from tvpower.schedule import load_schedule
from tvpower.timeline import main as timeline_main

MAKERSPACE = (
    Path(__file__).resolve().parent.parent / "scenarios/makerspace-potsdam.yaml"
)
START, UNTIL = "2019-03-05T12:00:00Z", "2019-03-05T21:00:00Z"
ENTRANCE, HALL = "machbar-entrance", "machbar-hall"
SEGMENT_COLUMNS = ["client_id", "group_id", "start", "end", "desired_state", "reason"]
ON, OFF = ("on", "event_window_active"), ("off", "no_active_event")
# Far more passes than a replay needs: 9 hours of refreshes every 5 minutes.
_MAX_PASSES = 1000

Record = dict[str, Any]
Lines = Sequence[str]


class _Lines(logging.Handler):
    """Keeps every record as the line the entry point would write."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _publish_log() -> Iterator[list[str]]:
    """The publisher's log records, as JSON lines, while the block runs."""
    logger = logging.getLogger("tvpower.publisher")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _RefusingSink:
    """A connection whose broker refuses publishes while the clock is in a span."""

    def __init__(
        self, sink: IntentSink, clock: SteppedClock, start: str, end: str
    ) -> None:
        self.sink, self.clock = sink, clock
        self.start, self.end = _utc(start), _utc(end)

    @property
    def protocol(self) -> str:
        return self.sink.protocol

    @property
    def connected(self) -> bool:
        return self.sink.connected

    @property
    def disconnected(self) -> asyncio.Event:
        return self.sink.disconnected

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes, int | None]]
    ) -> list[tuple[BrokerError | None, float]]:
        if self.start <= self.clock.now() < self.end:
            refused = BrokerError("PUBACK reason_code 0x97 (quota exceeded)")
            return [(refused, 0.0)] * len(messages)
        return await self.sink.publish_batch(messages)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _ns(text: str) -> int:
    return int(pd.Timestamp(text).as_unit("ns").value)


def _hms(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").strftime("%H:%M:%S")


async def _replay(
    publisher: Publisher, clock: SteppedClock, sink: IntentSink | None, until: str
) -> None:
    """Reconcile from wake to wake until the next wake is after ``until``.

    A pass that asks to wake at once still moves the clock on by a second, as
    the wall clock would: the publisher retries a refused publish without
    backoff while its refresh is overdue.
    """
    for _ in range(_MAX_PASSES):
        wake = await publisher.reconcile(sink)
        if wake > _utc(until):
            return
        await clock.advance(max(wake, clock.now() + timedelta(seconds=1)))
    pytest.fail(f"the publisher did not reach {until}")


async def _logged_run(
    broker: EmbeddedBroker,
    start: str = START,
    until: str = UNTIL,
    *,
    refuse: tuple[str, str] | None = None,
) -> list[str]:
    """The log of a publisher run on a stepped clock from ``start`` to ``until``."""
    clock = SteppedClock(_utc(start))
    publisher = Publisher(load_schedule(MAKERSPACE), clock)
    address = parse_broker_url(broker.url)
    with _publish_log() as lines:
        async with MqttPublisher(address, client_id="audit-test") as connection:
            sink: IntentSink = connection
            if refuse is not None:
                sink = _RefusingSink(connection, clock, *refuse)
            await _replay(publisher, clock, sink, until)
    return lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def evening() -> AsyncIterator[tuple[str, ...]]:
    """The log of an afternoon and evening at the makerspace, 12:00 to 21:00."""
    async with EmbeddedBroker("127.0.0.1", 0) as broker:
        yield tuple(await _logged_run(broker))


def _read(lines: Lines) -> pd.DataFrame:
    return read_publish_log(lines, source="publish.log")


def _expected() -> pd.DataFrame:
    timeline = compute_timeline(load_schedule(MAKERSPACE), _utc(START), _utc(UNTIL))
    return timeline.client_segments(timeline.start, timeline.end)


def _compare(lines: Lines, **options: Any) -> pd.DataFrame:
    return compare(rebuild(_read(lines)), _expected(), **options)


def _edit(lines: Lines, where: Callable[[Record], bool], **changes: Any) -> list[str]:
    """The log with ``changes`` made to every publish record ``where`` holds."""
    edited = []
    for line in lines:
        record = json.loads(line)
        if where(record):
            line = json.dumps({**record, **changes})
        edited.append(line)
    return edited


def _without(lines: Lines, where: Callable[[Record], bool]) -> list[str]:
    return [line for line in lines if not where(json.loads(line))]


def _of(client: str, first: str, last: str | None = None) -> Callable[[Record], bool]:
    """Publish records of ``client`` issued from ``first`` to ``last``, both in."""
    return lambda r: (
        r.get("event") == "publish"
        and r.get("client_id") == client
        and f"2019-03-05T{first}Z" <= r["issued_at"] <= f"2019-03-05T{last or first}Z"
    )


def _rows(frame: pd.DataFrame, client: str) -> list[tuple[Any, ...]]:
    """A client's rows without its id, times as ``HH:MM:SS`` on 2019-03-05."""
    mine = frame[frame["client_id"] == client].drop(columns="client_id")
    rows = []
    for row in mine.to_dict("records"):
        row["start"], row["end"] = _hms(row["start"]), _hms(row["end"])
        rows.append(tuple(row.values()))
    return rows


def _states(rebuilt: pd.DataFrame, client: str) -> list[tuple[str, str, str]]:
    """``(start, end, desired_state)`` of a client's rebuilt rows."""
    return [(r[1], r[2], r[3]) for r in _rows(rebuilt, client)]


def _intent_id(rebuilt: pd.DataFrame, client: str, state: str) -> str:
    mine = rebuilt[rebuilt["client_id"] == client]
    return str(mine[mine["desired_state"] == state]["intent_id"].iloc[0])


# The rebuilt timeline.


def test_the_rebuilt_timeline_is_the_engines(evening: tuple[str, ...]) -> None:
    records = _read(evening)
    rebuilt = rebuild(records)
    expected = _expected()

    assert (records["issued_at"].min(), records["issued_at"].max()) == (
        _ns(START),
        _ns(UNTIL),
    )
    columns = [*SEGMENT_COLUMNS, "window_start", "window_end"]
    assert rebuilt[columns].to_dict("records") == expected[columns].to_dict("records")
    assert compare(rebuilt, expected).empty


def test_refreshes_do_not_split_rows(evening: tuple[str, ...]) -> None:
    records = _read(evening)
    rebuilt = rebuild(records)
    for client in (ENTRANCE, HALL):
        assert (records["client_id"] == client).sum() > 100, "refreshed for 9 hours"
        assert _states(rebuilt, client) == [
            ("12:00:00", "13:00:00", "off"),
            ("13:00:00", "20:00:00", "on"),
            ("20:00:00", "21:00:00", "off"),
        ]


async def test_a_restarted_publisher_and_lines_out_of_order_change_nothing(
    embedded_broker: EmbeddedBroker, evening: tuple[str, ...]
) -> None:
    before = await _logged_run(embedded_broker, START, "2019-03-05T16:00:00Z")
    after = await _logged_run(embedded_broker, "2019-03-05T16:00:00Z", UNTIL)
    assert _without(after, _of(HALL, "16:00:00")) != after, "the restart republished"

    restarted = rebuild(_read(list(reversed(before + after))))
    pd.testing.assert_frame_equal(restarted, rebuild(_read(evening)))


async def test_failed_publishes_are_not_in_the_timeline(
    embedded_broker: EmbeddedBroker,
) -> None:
    refused = ("2019-03-05T20:00:00Z", "2019-03-05T20:00:30Z")
    records = _read(await _logged_run(embedded_broker, refuse=refused))
    failed = records[records["outcome"] == "failed"]
    assert set(failed["client_id"]) == {ENTRANCE, HALL}
    published = records[records["outcome"] == "acknowledged"]
    after = published[published["issued_at"] > failed["issued_at"].max()]
    late = int(after["issued_at"].min())
    assert late >= _ns(refused[1])

    rebuilt = rebuild(records)
    log_end = int(records["issued_at"].max())
    assert _states(rebuilt, HALL) == [
        ("12:00:00", "13:00:00", "off"),
        ("13:00:00", _hms(late), "on"),
        (_hms(late), _hms(log_end), "off"),
    ]
    differences = compare(rebuilt, _expected(), span=(_ns(START), log_end))
    assert _rows(differences, HALL) == [
        ("20:00:00", _hms(late), *ON, *OFF, _intent_id(rebuilt, HALL, "on"))
    ]


async def test_a_dry_run_can_be_audited(evening: tuple[str, ...]) -> None:
    clock = SteppedClock(_utc(START))
    options = PublisherOptions(dry_run=True)
    publisher = Publisher(load_schedule(MAKERSPACE), clock, options=options)
    with _publish_log() as lines:
        await _replay(publisher, clock, None, UNTIL)

    records = _read(lines)
    assert set(records["outcome"]) == {"dry_run"}
    pd.testing.assert_frame_equal(rebuild(records), rebuild(_read(evening)))


def test_an_intent_that_expired_before_the_next_publish_leaves_a_gap(
    evening: tuple[str, ...],
) -> None:
    outage = _without(evening, _of(ENTRANCE, "14:00:00", "14:59:59"))
    rebuilt = rebuild(_read(outage))

    assert _states(rebuilt, ENTRANCE) == [
        ("12:00:00", "13:00:00", "off"),
        ("13:00:00", "14:05:00", "on"),
        ("15:00:00", "20:00:00", "on"),
        ("20:00:00", "21:00:00", "off"),
    ]
    assert _rows(compare(rebuilt, _expected()), ENTRANCE) == [
        ("14:05:00", "15:00:00", None, None, *ON, None)
    ]


def test_a_stopped_record_ends_the_log_where_the_publisher_stopped(
    evening: tuple[str, ...],
) -> None:
    # The publisher stopped at 20:02:30, before any refresh of the 20:00 "off".
    cut = _without(evening, lambda r: r.get("issued_at", "") > "2019-03-05T20:00:00Z")
    stopped = {"event": "stopped", "client_id": "p", "at": "2019-03-05T20:02:30Z"}
    lines = [*cut, "not json", json.dumps(stopped)]

    records = _read(lines)
    rebuilt = rebuild(records)

    assert _states(rebuilt, HALL)[-1] == ("20:00:00", "20:02:30", "off")
    assert records["outcome"].tolist().count("stopped") == 1
    span = (_ns(START), _ns("2019-03-05T20:02:30Z"))
    assert compare(rebuilt, _expected(), span=span).empty
    # Without it, the log ends at its last publish: the "off" has no length.
    assert _states(rebuild(_read(cut)), HALL)[-1] == ("20:00:00", "20:00:00", "off")


def test_rows_are_clipped_to_the_span_asked_for(evening: tuple[str, ...]) -> None:
    span = {"start": _ns("2019-03-05T19:00:00Z"), "end": _ns("2019-03-05T20:30:00Z")}
    assert _states(rebuild(_read(evening), **span), HALL) == [
        ("19:00:00", "20:00:00", "on"),
        ("20:00:00", "20:30:00", "off"),
    ]


# Differences from the engine.


def test_a_missing_transition_is_a_difference(evening: tuple[str, ...]) -> None:
    lines = _without(evening, _of(HALL, "20:00:00"))
    on_id = _intent_id(rebuild(_read(evening)), HALL, "on")
    assert _rows(_compare(lines), HALL) == [("20:00:00", "20:05:00", *ON, *OFF, on_id)]
    assert _rows(_compare(lines), ENTRANCE) == []


def test_a_wrong_state_is_a_difference(evening: tuple[str, ...]) -> None:
    wrong = {"desired_state": "off", "reason": "client_override_off", "window": None}
    lines = _edit(evening, _of(ENTRANCE, "15:00:00"), intent_id="wrong", **wrong)
    rebuilt = rebuild(_read(lines))

    assert _states(rebuilt, ENTRANCE)[1:4] == [
        ("13:00:00", "15:00:00", "on"),
        ("15:00:00", "15:05:00", "off"),
        ("15:05:00", "20:00:00", "on"),
    ]
    assert _rows(compare(rebuilt, _expected()), ENTRANCE) == [
        ("15:00:00", "15:05:00", "off", "client_override_off", *ON, "wrong")
    ]


def test_a_publish_late_by_less_than_the_tolerance_is_no_difference(
    evening: tuple[str, ...],
) -> None:
    late = _edit(evening, _of(HALL, "13:00:00"), issued_at="2019-03-05T13:00:04Z")
    off_id = _intent_id(rebuild(_read(evening)), HALL, "off")

    assert _compare(late).empty
    assert _rows(_compare(late, tolerance_seconds=3), HALL) == [
        ("13:00:00", "13:00:04", *OFF, *ON, off_id)
    ]


def test_a_client_on_one_side_only_is_a_difference(evening: tuple[str, ...]) -> None:
    renamed = _edit(evening, _of(ENTRANCE, "00:00:00", "23:59:59"), client_id="ghost")
    differences = _compare(renamed)

    assert [r[:6] for r in _rows(differences, ENTRANCE)] == [
        ("12:00:00", "13:00:00", None, None, *OFF),
        ("13:00:00", "20:00:00", None, None, *ON),
        ("20:00:00", "21:00:00", None, None, *OFF),
    ]
    assert [r[:6] for r in _rows(differences, "ghost")] == [
        ("12:00:00", "13:00:00", *OFF, None, None),
        ("13:00:00", "20:00:00", *ON, None, None),
        ("20:00:00", "21:00:00", *OFF, None, None),
    ]
    assert _rows(differences, HALL) == []


# Reading the log.


def test_lines_that_are_not_publish_records_are_skipped(
    evening: tuple[str, ...],
) -> None:
    noise = [
        "port 1883 is taken; the embedded broker listens on port 41883 instead",
        "17:59:50 info    publish client_id=machbar-hall desired_state=on",
        json.dumps({"event": "connected", "client_id": "tvpower-1"}),
        "[1, 2, 3]",
        "",
        '{"event": "publish", "client_id": "machbar-ha',
    ]
    noisy = [*noise[:3], *evening, *noise[3:]]
    pd.testing.assert_frame_equal(
        rebuild(_read(noisy)), rebuild(_read(evening)), check_index_type=False
    )


_INSTANT = "an ISO 8601 instant such as 2019-03-05T17:59:50Z"
_DROP = "(drop the field)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"issued_at": _DROP},
            f"field 'issued_at' is missing (expected {_INSTANT})",
            id="missing",
        ),
        pytest.param(
            {"issued_at": "2019-03-05T12:00:00"},
            f"field 'issued_at': expected {_INSTANT}, got \"2019-03-05T12:00:00\"",
            id="no-zone",
        ),
        pytest.param(
            {"desired_state": "standby"},
            'field \'desired_state\': expected "on" or "off", got "standby"',
            id="state",
        ),
        pytest.param(
            {"window": {"start": "soon", "end": "2019-03-05T20:00:00Z"}},
            f"field 'window.start': expected {_INSTANT}, got \"soon\"",
            id="window-instant",
        ),
        pytest.param(
            {"window": {"end": "2019-03-05T20:00:00Z"}},
            f"field 'window.start' is missing (expected {_INSTANT})",
            id="window-start",
        ),
        pytest.param(
            {"window": "13:00-20:00"},
            'field \'window\': expected null or {"start": INSTANT, "end": INSTANT},'
            ' got "13:00-20:00"',
            id="window-text",
        ),
        pytest.param(
            {"client_id": 42},
            "field 'client_id': expected a non-empty string or null, got 42",
            id="client",
        ),
    ],
)
def test_a_bad_publish_record_is_one_line_naming_line_and_field(
    evening: tuple[str, ...], change: Record, message: str
) -> None:
    record = {**json.loads(evening[0]), **change}
    bad = json.dumps({k: v for k, v in record.items() if v is not _DROP})
    later = json.dumps({**json.loads(evening[2]), "desired_state": "standby"})
    with pytest.raises(UsageError) as raised:
        _read(["a banner", evening[1], bad, later, *evening[3:]])
    assert str(raised.value) == f"publish.log:3: {message}"


# The command line.


def _write_log(path: Path, lines: Lines) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _run(*args: str) -> tuple[int, list[dict[str, str]]]:
    out = io.StringIO()
    status = timeline_main(list(args), out=out)
    return status, list(csv.DictReader(io.StringIO(out.getvalue())))


def test_cli_prints_the_timeline_rebuilt_from_a_log(
    tmp_path: Path, evening: tuple[str, ...]
) -> None:
    log = _write_log(tmp_path / "publish.log", evening)
    out = io.StringIO()
    assert timeline_main(["--from-log", log], out=out) == 0

    header, *rows = out.getvalue().splitlines()
    assert header == "client_id,group_id,start,end,desired_state,reason,intent_id"
    on_id = _intent_id(rebuild(_read(evening)), HALL, "on")
    assert len(rows) == 6
    assert rows[4] == (
        f"{HALL},machbar,2019-03-05T13:00:00Z,2019-03-05T20:00:00Z,on,"
        f"event_window_active,{on_id}"
    )


def test_cli_compares_a_log_with_the_schedule(
    tmp_path: Path, evening: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write_log(tmp_path / "good.log", evening)
    status, rows = _run("--from-log", good, "--schedule", str(MAKERSPACE))
    assert (status, rows) == (0, [])
    assert capsys.readouterr().err == (
        "no differences from 2019-03-05T12:00:00Z to 2019-03-05T21:00:00Z\n"
    )

    bad = _write_log(tmp_path / "bad.log", _without(evening, _of(HALL, "20:00:00")))
    status, rows = _run("--from-log", bad, "--schedule", str(MAKERSPACE))
    assert status == 1
    assert [(r["client_id"], r["start"], r["end"]) for r in rows] == [
        (HALL, "2019-03-05T20:00:00Z", "2019-03-05T20:05:00Z")
    ]
    assert (rows[0]["logged_state"], rows[0]["expected_state"]) == ("on", "off")
    assert capsys.readouterr().err == (
        "1 difference from 2019-03-05T12:00:00Z to 2019-03-05T21:00:00Z\n"
    )


def test_cli_reads_the_log_from_stdin_over_a_span_in_local_time(
    evening: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(evening)))
    span = ("--from", "2019-03-05T20:00", "--to", "2019-03-05T23:00")
    status, rows = _run("--from-log", "-", "--schedule", str(MAKERSPACE), *span)

    assert status == 1, "the log ends at 21:00 UTC, the span at 22:00 UTC"
    assert {(r["start"], r["end"], r["logged_state"]) for r in rows} == {
        ("2019-03-05T21:00:00Z", "2019-03-05T22:00:00Z", "")
    }
    assert capsys.readouterr().err == (
        "2 differences from 2019-03-05T19:00:00Z to 2019-03-05T22:00:00Z\n"
    )


@pytest.mark.parametrize(
    ("log", "args", "message"),
    [
        pytest.param(
            ["a banner", '{"event": "publish", "client_id": null}'],
            [],
            "{log}:2: field 'group_id' is missing (expected a non-empty string "
            "or null)",
            id="bad-record",
        ),
        pytest.param(
            None,
            [],
            "--from-log: cannot read {log}: No such file or directory",
            id="no-file",
        ),
        pytest.param(
            ["a banner", '{"event": "connected"}'],
            [],
            "{log}: no publish records (the publisher logs them as JSON lines "
            "when stderr is not a terminal, or with --log-format json)",
            id="no-records",
        ),
        pytest.param(
            [],
            ["--tolerance", "soon"],
            "--tolerance: expected a number of seconds >= 0, got 'soon'",
            id="tolerance",
        ),
        pytest.param(
            [],
            ["--from", "2019-03-05T21:00Z", "--to", "2019-03-05T20:00Z"],
            "--to must be after --from, got --from 2019-03-05T21:00:00Z and "
            "--to 2019-03-05T20:00:00Z",
            id="span",
        ),
    ],
)
def test_cli_errors_are_one_line_and_status_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    log: list[str] | None,
    args: list[str],
    message: str,
) -> None:
    path = tmp_path / "publish.log"
    if log is not None:
        _write_log(path, log)
    status, rows = _run("--from-log", str(path), *args)
    assert (status, rows) == (2, [])
    error = f"tvpower.timeline: error: {message.format(log=path)}\n"
    assert capsys.readouterr().err == error


def test_cli_still_needs_a_range_without_a_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert timeline_main(["--schedule", str(MAKERSPACE)]) == 2
    assert capsys.readouterr().err == (
        "tvpower.timeline: error: --from and --to are required without --from-log\n"
    )
