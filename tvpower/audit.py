"""The audit: each client's intent timeline rebuilt from the publisher's log.

The publisher writes one JSON record per publish attempt (``"event":
"publish"``). :func:`read_publish_log` reads them, :func:`rebuild` turns the
published ones into each client's intent timeline, and :func:`compare`
lists where that timeline and the engine's disagree.

How a rebuilt timeline reads:

- A publish counts when the broker acknowledged it (outcome
  ``acknowledged``) or a dry run logged it (``dry_run``), so a dry run can
  be audited too. Failed and skipped attempts never reached a client.
- A row starts at the first publish of an intent whose ``intent_id``
  differs from the client's previous one. Refreshes, and republishes after
  a reconnect or a restart, carry the same ``intent_id`` and extend the row.
- A row ends where the client's next row starts. If the retained intent
  expired first (the ``expires_at`` of its last publish came before the
  next publish), it ends at that expiry: the client had no valid intent in
  between, and the timeline has a gap there.
- The log ends where the publisher stopped: its ``stopped`` record gives
  the instant (``at``, on the publisher's clock) and reads as a record
  with outcome ``stopped``, no client and no intent. Without one (a log
  cut off while the publisher ran), the log ends at its latest
  ``issued_at``. Beyond its end the log cannot tell what was published, so
  each client's last row ends there (or at its expiry, if sooner).

Instants are int64 nanoseconds since the Unix epoch, UTC, as in
:mod:`tvpower.engine`; ``window_start`` and ``window_end`` are -1 for an
intent without an event window. Group-topic records (no ``client_id``) are
read but left out of the rebuilt timeline, which is per client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tvpower.errors import UsageError

__all__ = [
    "DIFFERENCE_COLUMNS",
    "PUBLISHED_OUTCOMES",
    "RECORD_COLUMNS",
    "TIMELINE_COLUMNS",
    "compare",
    "read_publish_log",
    "rebuild",
]

NS = 1_000_000_000

#: Outcomes of a publish attempt whose intent a client got (or, in a dry
#: run, would have got).
PUBLISHED_OUTCOMES = ("acknowledged", "dry_run")

#: The columns of :func:`read_publish_log`; ``line`` is 1-based.
RECORD_COLUMNS = [
    "line",
    "client_id",
    "group_id",
    "intent_id",
    "desired_state",
    "reason",
    "window_start",
    "window_end",
    "issued_at",
    "expires_at",
    "outcome",
]

#: The columns of :func:`rebuild`.
TIMELINE_COLUMNS = [
    "client_id",
    "group_id",
    "start",
    "end",
    "desired_state",
    "reason",
    "intent_id",
    "window_start",
    "window_end",
]

#: The columns of :func:`compare`; the ``logged_*`` and ``expected_*``
#: values are missing where that side has no intent for the client.
DIFFERENCE_COLUMNS = [
    "client_id",
    "start",
    "end",
    "logged_state",
    "logged_reason",
    "expected_state",
    "expected_reason",
    "logged_intent_id",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_INSTANT = "an ISO 8601 instant such as 2019-03-05T17:59:50Z"
_TEXT = "a non-empty string"
_OPTIONAL_TEXT = "a non-empty string or null"
# The fields of a publish record that the audit reads, and the window,
# which it reads as three: see _split_window.
_FIELDS = (
    "client_id",
    "group_id",
    "intent_id",
    "desired_state",
    "reason",
    "issued_at",
    "expires_at",
    "outcome",
)
_WINDOW_FIELDS = ("window", "window.start", "window.end")
_RAW_FIELDS = (*_FIELDS, *_WINDOW_FIELDS)
_MISSING = object()
_INT64 = {
    "line": np.int64,
    "window_start": np.int64,
    "window_end": np.int64,
    "issued_at": np.int64,
    "expires_at": np.int64,
}
# The state and reason columns, logged and expected: they make a difference.
_SIDES = ("logged_state", "logged_reason", "expected_state", "expected_reason")


def read_publish_log(lines: Iterable[str], *, source: str) -> pd.DataFrame:
    """Every publish record of the log, sorted by ``issued_at``, then line.

    Lines that are not JSON objects with ``"event": "publish"`` (a banner,
    pretty log lines, other events) are skipped. A publish record with a
    field missing or wrong raises :class:`UsageError` naming
    ``source:LINE`` and the field. Columns: :data:`RECORD_COLUMNS`.
    """
    numbers, raw = _publish_fields(lines)
    columns = _columns(raw, numbers, source)
    records = pd.DataFrame({"line": numbers, **columns}, columns=RECORD_COLUMNS)
    records = records.astype(_INT64)
    records = records.sort_values(["issued_at", "line"], kind="stable")
    return records.reset_index(drop=True)


def rebuild(
    records: pd.DataFrame, *, start: int | None = None, end: int | None = None
) -> pd.DataFrame:
    """Each client's intent timeline from :func:`read_publish_log` records.

    See the module docstring for when a row starts and ends. ``start`` and
    ``end`` (ns) clip the rows to ``[start, end)``; by default the timeline
    spans the whole log. Columns: :data:`TIMELINE_COLUMNS`, sorted by client
    and start.
    """
    log_end = int(records["issued_at"].max()) if len(records) else 0
    published = records[
        records["outcome"].isin(PUBLISHED_OUTCOMES) & records["client_id"].notna()
    ]
    published = published.sort_values(["client_id", "issued_at", "line"], kind="stable")
    return _clip(_rows(published, log_end), start, end)


def compare(
    rebuilt: pd.DataFrame,
    expected_segments: pd.DataFrame,
    *,
    tolerance_seconds: float = 5,
    span: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Where the rebuilt timeline and the engine's segments disagree.

    ``expected_segments`` are :meth:`tvpower.engine.Timeline.client_segments`
    rows. Over ``span`` (ns, ``[start, end)``; by default the extent of the
    expected segments), every client of either side is compared on
    ``desired_state`` and ``reason``. A client missing from one side, or a
    gap in the log, disagrees with everything the other side says.

    A publish follows its transition a little later on the wall clock, and
    ``issued_at`` is in whole seconds, so a disagreement lasting no more than
    ``tolerance_seconds`` in all is not reported. Each row of the result is
    one stretch of a disagreement with the same values on both sides.
    Columns: :data:`DIFFERENCE_COLUMNS`, sorted by client and start.
    """
    if tolerance_seconds < 0:
        raise ValueError(f"tolerance_seconds must be >= 0, got {tolerance_seconds}")
    lo, hi = span if span is not None else _extent(expected_segments, rebuilt)
    logged = _pieces(rebuilt, "logged", lo, hi)
    expected = _pieces(expected_segments, "expected", lo, hi)
    intervals = _elementary(logged, expected, lo, hi)
    intervals = _covering(intervals, logged, "logged")
    intervals = _covering(intervals, expected, "expected")
    intervals = intervals.sort_values(["client_id", "start"], kind="stable")
    differ = _disagree(intervals)
    return _differences(intervals[differ], int(tolerance_seconds * NS))


# Reading the log.


def _publish_fields(lines: Iterable[str]) -> tuple[list[int], dict[str, list[Any]]]:
    """Line numbers of the publish records, and the raw values of each field.

    No record is kept whole, so that a big log stays cheap to hold (and to
    garbage-collect): only its values, in one list per field.
    """
    numbers: list[int] = []
    raw: dict[str, list[Any]] = {name: [] for name in _RAW_FIELDS}
    for number, line in enumerate(lines, start=1):
        data = _publish_record(line)
        if data is None:
            continue
        if data.get("event") == "stopped":
            data = _stop_as_record(data)
        numbers.append(number)
        for name in _FIELDS:
            raw[name].append(data.get(name, _MISSING))
        window = _split_window(data.get("window", _MISSING))
        for name, value in zip(_WINDOW_FIELDS, window, strict=True):
            raw[name].append(value)
    return numbers, raw


def _split_window(window: Any) -> tuple[Any, Any, Any]:
    """``window`` as what is left to check of it, its start and its end.

    An object is checked by its bounds (and leaves None); anything else,
    null or wrong, is checked as it is, with no bounds.
    """
    if isinstance(window, dict):
        return None, window.get("start", _MISSING), window.get("end", _MISSING)
    return window, None, None


def _publish_record(line: str) -> dict[str, Any] | None:
    """The publish record on ``line``, if any.

    A line may carry a prefix before its JSON object, such as the time and
    host that ``journalctl`` puts in front of each line.
    """
    brace = line.find("{")
    if brace < 0:
        return None
    try:
        data = json.loads(line[brace:])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("event") == "publish":
        return data
    if data.get("event") == "stopped" and "at" in data:
        return data
    return None


def _stop_as_record(stopped: dict[str, Any]) -> dict[str, Any]:
    """A ``stopped`` record in the shape of a publish record: the log's end."""
    return {
        "client_id": None,
        "group_id": None,
        "intent_id": "-",
        "desired_state": "off",
        "reason": "-",
        "window": None,
        "issued_at": stopped["at"],
        "expires_at": stopped["at"],
        "outcome": "stopped",
    }


def _columns(
    raw: dict[str, list[Any]], numbers: list[int], source: str
) -> dict[str, list[Any]]:
    """The checked values of each field; the first bad one, by line, raises."""
    checked = {
        "client_id": _texts(raw["client_id"], "client_id", optional=True),
        "group_id": _texts(raw["group_id"], "group_id", optional=True),
        "intent_id": _texts(raw["intent_id"], "intent_id"),
        "desired_state": _states(raw["desired_state"]),
        "reason": _texts(raw["reason"], "reason"),
        "window": _windows(raw["window"]),
        "window_start": _instants(raw["window.start"], "window.start", absent=-1),
        "window_end": _instants(raw["window.end"], "window.end", absent=-1),
        "issued_at": _instants(raw["issued_at"], "issued_at"),
        "expires_at": _instants(raw["expires_at"], "expires_at"),
        "outcome": _texts(raw["outcome"], "outcome"),
    }
    problems = [
        (c.problem[0], order, c.problem[1])
        for order, c in enumerate(checked.values())
        if c.problem is not None
    ]
    if problems:
        index, _, message = min(problems)
        raise UsageError(f"{source}:{numbers[index]}: {message}")
    del checked["window"]
    return {name: c.values for name, c in checked.items()}


@dataclass(frozen=True)
class _Checked:
    """A field's values, or the first (index, message) that is wrong."""

    values: list[Any]
    problem: tuple[int, str] | None = None


def _texts(values: list[Any], name: str, *, optional: bool = False) -> _Checked:
    for index, value in enumerate(values):
        if not (_is_text(value) or (optional and value is None)):
            expected = _OPTIONAL_TEXT if optional else _TEXT
            return _Checked([], (index, _problem(name, expected, value)))
    return _Checked(values)


def _states(values: list[Any]) -> _Checked:
    for index, value in enumerate(values):
        if value not in ("on", "off"):
            expected = '"on" or "off"'
            return _Checked([], (index, _problem("desired_state", expected, value)))
    return _Checked(values)


def _windows(values: list[Any]) -> _Checked:
    """What :func:`_split_window` left: anything but None is wrong."""
    for index, value in enumerate(values):
        if value is not None:
            expected = 'null or {"start": INSTANT, "end": INSTANT}'
            return _Checked([], (index, _problem("window", expected, value)))
    return _Checked(values)


def _instants(values: list[Any], name: str, *, absent: int | None = None) -> _Checked:
    """Instants in ns since the epoch; each must name its offset.

    With ``absent``, None stands for no instant and gives that value.
    """
    result = []
    for index, value in enumerate(values):
        ns = absent if value is None and absent is not None else _ns(value)
        if ns is None:
            return _Checked([], (index, _problem(name, _INSTANT, value)))
        result.append(ns)
    return _Checked(result)


def _ns(value: Any) -> int | None:
    if not _is_text(value):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return (instant - _EPOCH) // _ONE_US * 1000


def _problem(name: str, expected: str, value: Any) -> str:
    if value is _MISSING:
        return f"field '{name}' is missing (expected {expected})"
    got = json.dumps(value, ensure_ascii=False)
    return f"field '{name}': expected {expected}, got {got}"


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


# Rebuilding the timeline.


def _rows(published: pd.DataFrame, log_end: int) -> pd.DataFrame:
    """One row per run of publishes of one intent, without an expiry between."""
    client = published["client_id"].to_numpy()
    intent = published["intent_id"].to_numpy()
    issued = published["issued_at"].to_numpy(dtype=np.int64)
    expires = published["expires_at"].to_numpy(dtype=np.int64)

    first = np.ones(len(published), dtype=bool)
    first[1:] = (
        (client[1:] != client[:-1])
        | (intent[1:] != intent[:-1])
        | (issued[1:] > expires[:-1])
    )
    last = np.ones(len(published), dtype=bool)
    last[:-1] = first[1:]

    start = issued[first]
    row_client = client[first]
    next_start = np.full(len(start), log_end, dtype=np.int64)
    same_client = row_client[1:] == row_client[:-1]
    next_start[:-1] = np.where(same_client, start[1:], log_end)
    end = np.maximum(np.minimum(next_start, expires[last]), start)

    rows = published[first].assign(start=start, end=end)
    return rows[TIMELINE_COLUMNS].reset_index(drop=True)


def _clip(rows: pd.DataFrame, start: int | None, end: int | None) -> pd.DataFrame:
    """Rows inside ``[start, end)``, clipped to it; a point row inside stays."""
    if start is None and end is None:
        return rows
    lo = start if start is not None else np.iinfo(np.int64).min
    hi = end if end is not None else np.iinfo(np.int64).max
    point = (rows["start"] == rows["end"]) & (rows["start"] >= lo)
    inside = (rows["start"] < hi) & ((rows["end"] > lo) | point)
    rows = rows[inside].copy()
    rows["start"] = rows["start"].clip(lower=lo)
    rows["end"] = rows["end"].clip(upper=hi)
    return rows.reset_index(drop=True)


# Comparing with the engine.


def _extent(expected: pd.DataFrame, rebuilt: pd.DataFrame) -> tuple[int, int]:
    """The span the expected segments cover, else the rebuilt timeline's."""
    frame = expected if len(expected) else rebuilt
    if frame.empty:
        return 0, 0
    return int(frame["start"].min()), int(frame["end"].max())


def _pieces(rows: pd.DataFrame, side: str, lo: int, hi: int) -> pd.DataFrame:
    """One side's non-empty rows inside ``[lo, hi)``, its columns named by side.

    The logged side keeps its ``intent_id``, for finding it in the log.
    """
    columns = {
        "client_id": "client_id",
        "start": f"{side}_start",
        "end": f"{side}_end",
        "desired_state": f"{side}_state",
        "reason": f"{side}_reason",
    }
    if side == "logged":
        columns["intent_id"] = "logged_intent_id"
    pieces = rows[list(columns)].rename(columns=columns)
    pieces[f"{side}_start"] = pieces[f"{side}_start"].clip(lower=lo)
    pieces[f"{side}_end"] = pieces[f"{side}_end"].clip(upper=hi)
    pieces = pieces[pieces[f"{side}_end"] > pieces[f"{side}_start"]]
    return pieces.astype(
        {"client_id": object, f"{side}_start": np.int64, f"{side}_end": np.int64}
    )


def _elementary(
    logged: pd.DataFrame, expected: pd.DataFrame, lo: int, hi: int
) -> pd.DataFrame:
    """Per client, the intervals between all the bounds of both sides and span."""
    clients = pd.unique(
        pd.concat([logged["client_id"], expected["client_id"]]).astype(object)
    )
    bounds = pd.concat(
        [
            _bounds(logged, "logged"),
            _bounds(expected, "expected"),
            pd.DataFrame({"client_id": clients, "time": lo}),
            pd.DataFrame({"client_id": clients, "time": hi}),
        ]
    ).astype({"client_id": object, "time": np.int64})
    bounds = bounds.drop_duplicates().sort_values(["client_id", "time"])
    bounds["end"] = bounds.groupby("client_id")["time"].shift(-1)
    intervals = bounds.dropna(subset=["end"]).rename(columns={"time": "start"})
    return intervals.astype({"end": np.int64}).reset_index(drop=True)


def _bounds(pieces: pd.DataFrame, side: str) -> pd.DataFrame:
    return pd.concat(
        [
            pieces[["client_id", f"{side}_{edge}"]].rename(
                columns={f"{side}_{edge}": "time"}
            )
            for edge in ("start", "end")
        ]
    )


def _covering(intervals: pd.DataFrame, pieces: pd.DataFrame, side: str) -> pd.DataFrame:
    """Each interval with the values of the side's piece covering it, if any."""
    start, end = f"{side}_start", f"{side}_end"
    merged = pd.merge_asof(
        intervals.sort_values("start"),
        pieces.sort_values(start),
        left_on="start",
        right_on=start,
        by="client_id",
        direction="backward",
    )
    values = [c for c in pieces.columns if c not in ("client_id", start, end)]
    merged[values] = merged[values].astype(object)
    merged.loc[~(merged[end] > merged["start"]), values] = None
    return merged.drop(columns=[start, end])


def _disagree(intervals: pd.DataFrame) -> pd.Series:
    """Where state or reason differ, missing on one side counting as a value."""
    sides = intervals[list(_SIDES)].fillna("")
    state = sides["logged_state"] != sides["expected_state"]
    reason = sides["logged_reason"] != sides["expected_reason"]
    return state | reason


def _differences(differ: pd.DataFrame, tolerance_ns: int) -> pd.DataFrame:
    """Stretches of disagreement, dropping runs no longer than the tolerance."""
    client = differ["client_id"].to_numpy()
    start = differ["start"].to_numpy(dtype=np.int64)
    end = differ["end"].to_numpy(dtype=np.int64)
    follows = np.zeros(len(differ), dtype=bool)
    follows[1:] = (client[1:] == client[:-1]) & (start[1:] == end[:-1])

    run = np.cumsum(~follows)
    run_start = pd.Series(start).groupby(run).transform("min").to_numpy()
    run_end = pd.Series(end).groupby(run).transform("max").to_numpy()
    keep = run_end - run_start > tolerance_ns
    differ, follows = differ[keep], follows[keep]

    values = differ[[*_SIDES, "logged_intent_id"]].fillna("").to_numpy()
    first = np.ones(len(differ), dtype=bool)
    first[1:] = ~follows[1:] | (values[1:] != values[:-1]).any(axis=1)
    last = np.ones(len(differ), dtype=bool)
    last[:-1] = first[1:]
    rows = differ[first].assign(end=differ["end"].to_numpy(dtype=np.int64)[last])
    return rows[DIFFERENCE_COLUMNS].reset_index(drop=True)
