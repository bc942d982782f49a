"""Checks of a recorded run against the engine, the contract and the scenario.

Schedule versions: the scenario's schedule, then one per instant at which
its timeline edits events (all the edits of an instant make one version).
Version ``i`` rules ``[since_i, since_{i+1})`` and is the one *in force*
there: the harness applies an instant's edits before the publisher acts on
it. Only at the span's start is the first version in force too, since the
publisher starts, and publishes, before any edit there.

``on_window``: no ``off`` intent received while every version in force
then puts the client in an ``on`` window, and no stretch of a TV off while
the version ruling each instant says ``on``: one violation per dark
stretch, however it came about (a switch-off, an outage, a client away
when its window began), at the stretch's start and with its length. A TV
that is off as its window starts is not dark, since ``on`` applies at once;
a client not present is not a TV that is off. A TV may still be off for
the grace after an edit ended a version that said ``off`` then: a client
that heard that version's ``off`` switches off a grace later (a
switch-off within grace of an edit counts only if every version in force
then said ``on``).
A client obeys its own topic over its group's, and a group's intent knows
nothing of client overrides: ``on_window`` and the ``no_off_between`` and
``reason`` expectations judge the intents on the client's own topic only.
``retained``: a client that reconnects or joins learns at once, from the
retained intent, the state of some version in force then. ``payload``:
every intent is schema-valid, in UTC with ``Z``, and not expired on
arrival. ``audit``: the publisher's log, rebuilt by :mod:`tvpower.audit`,
matches the engine (runs without edits only). ``expect``: the scenario's
own statements, judged by what the clients received and the TVs did, not
by the versions: an ``off`` intent that really arrived breaks a
``no_off_between`` even if an ``on`` followed at the same instant.

While the scenario has the publisher stopped, nobody keeps the retained
intents fresh: a client that (re)connects then may find one expired, and
the log has nothing to rebuild. ``retained``, the expiry part of
``payload`` and ``audit`` leave those stretches out; ``on_window`` does not,
so an outage that darkens a TV inside its window is a violation.

A run the harness cut short (``harness``: too many steps, out of time) is
a failure of its own, judged no further than its payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tvpower.audit import compare, read_publish_log, rebuild
from tvpower.engine import compute_timeline
from tvpower.intents import format_instant
from tvpower.sim.fleet import EXPIRED, Receipt, client_topic
from tvpower.sim.run import Recording, Violation
from tvpower.sim.scenario import Expectation

__all__ = [
    "POWER_COLUMNS",
    "RECEIVED_COLUMNS",
    "VIOLATION_COLUMNS",
    "Verdict",
    "verify",
]

NS = 1_000_000_000
RECEIVED_COLUMNS = [
    "client_id",
    "at",
    "topic",
    "via",
    "retained",
    "valid",
    "problem",
    "intent_id",
    "desired_state",
    "reason",
    "grace_seconds",
    "issued_at",
    "expires_at",
]
POWER_COLUMNS = ["client_id", "start", "end", "power"]
VIOLATION_COLUMNS = ["check", "client_id", "at", "detail"]
_DEFAULT_GRACE = 30
#: A stretch of time, ``[start, end)`` in nanoseconds.
Span = tuple[int, int]


@dataclass(frozen=True)
class Verdict:
    received: pd.DataFrame
    power: pd.DataFrame
    violations: pd.DataFrame


class _Engine:
    """What each schedule version in force says, per client and instant."""

    def __init__(self, recording: Recording) -> None:
        scenario = recording.scenario
        self.span = (_ns(scenario.start), _ns(scenario.end))
        self.versions: list[tuple[datetime, pd.DataFrame]] = []
        # Per segments frame: each client's rows as arrays, for fast lookups.
        self._by_client: dict[int, dict[str, tuple[Any, ...]]] = {}
        for since, schedule in recording.versions:
            timeline = compute_timeline(schedule, scenario.start, scenario.end)
            self.versions.append((since, timeline.client_segments(*self.span)))

    def _index(self, rows: pd.DataFrame) -> dict[str, tuple[Any, ...]]:
        index = self._by_client.get(id(rows))
        if index is None:
            index = {
                str(client_id): (
                    group["start"].to_numpy(),
                    group["end"].to_numpy(),
                    group["desired_state"].to_numpy(),
                    group["reason"].to_numpy(),
                )
                for client_id, group in rows.groupby("client_id", sort=False)
            }
            self._by_client[id(rows)] = index
        return index

    def in_force(self, at: datetime) -> list[pd.DataFrame]:
        """The segments of every schedule version in force at ``at``.

        The one ruling then; at the span's start also the first, which
        the publisher published before the edits there.
        """
        versions = self.versions
        ruling = [
            segments
            for i, (since, segments) in enumerate(versions)
            if since <= at and (i + 1 == len(versions) or versions[i + 1][0] > at)
        ] or [versions[0][1]]
        if _ns(at) == self.span[0] and ruling[0] is not versions[0][1]:
            ruling.insert(0, versions[0][1])
        return ruling

    def states(self, client_id: str, at: datetime) -> list[str | None]:
        """What each version in force at ``at`` says for the client then."""
        return [self.state(client_id, at, s) for s in self.in_force(at)]

    def state(self, client_id: str, at: datetime, segments: pd.DataFrame) -> str | None:
        instant = _ns(at)
        mine = self._index(segments).get(client_id)
        if mine is None:
            return None
        starts, ends, states, _reasons = mine
        hit = np.flatnonzero((starts <= instant) & (ends > instant))
        return str(states[hit[0]]) if len(hit) else None

    def on_spans(self) -> dict[str, list[Span]]:
        """Each client's stretches of ``on``, each version over the time it rules."""
        return _spans_by_client(
            [
                _clipped(segments[segments["desired_state"] == "on"], lo, hi)
                for lo, hi, segments in self._ruling()
                if lo < hi
            ]
        )

    def excused_spans(self, graces: dict[str, int]) -> dict[str, list[Span]]:
        """Where each client's TV may still be off by an earlier version.

        A version that says anything but ``on`` at its end (the next
        version's since) excuses that client's grace after it: a client
        that heard its ``off`` switches off a grace later, even if the next
        version says ``on``. The last version ends with the span and
        excuses nothing.
        """
        frames = []
        for _lo, hi, segments in self._ruling()[:-1]:
            rows = segments[segments["desired_state"] != "on"]
            grace = rows["client_id"].map(graces).fillna(_DEFAULT_GRACE)
            until = hi + grace.to_numpy(dtype=np.int64) * NS
            frames.append(_clipped(rows, hi, until))
        return _spans_by_client(frames)

    def _ruling(self) -> list[tuple[int, int, pd.DataFrame]]:
        """Each version with the span it rules, ``[since_i, since_{i+1})``."""
        bounds = [_ns(since) for since, _ in self.versions] + [self.span[1]]
        return [
            (lo, hi, segments)
            for lo, hi, (_, segments) in zip(
                bounds, bounds[1:], self.versions, strict=False
            )
        ]


def verify(recording: Recording) -> Verdict:
    """Run every check; the received intents, the TV power, the violations."""
    engine = _Engine(recording)
    received = _received(recording.receipts)
    power = _power(recording)
    rows: list[Violation] = list(recording.problems)
    rows += _payloads(recording)
    # A run the harness cut short says so; its TVs, log and expectations
    # stop where it stopped, and judging them would only add noise.
    finished = not any(check == "harness" for check, *_ in recording.problems)
    if finished:
        rows += _off_in_window(recording, engine)
        rows += _retained(recording, engine)
        if not recording.scenario.edits:
            rows += _audit(recording, engine)
        for expectation in recording.scenario.expectations:
            rows += _expectation(expectation, received, power)
    violations = _typed(pd.DataFrame(rows, columns=VIOLATION_COLUMNS))
    violations = violations.sort_values(["at", "check"], kind="stable")
    return Verdict(received, power, violations.reset_index(drop=True))


_INSTANT_COLUMNS = {"at", "start", "end"}
_TEXT_COLUMNS = {
    "check",
    "client_id",
    "detail",
    "topic",
    "via",
    "problem",
    "intent_id",
    "desired_state",
    "reason",
    "issued_at",
    "expires_at",
    "power",
}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of one type each, also when empty: a Parquet file says what it holds.

    Instants are UTC timestamps (whole seconds, kept in microseconds), text
    is text, missing values stay missing.
    """
    for column in frame.columns:
        if column in _INSTANT_COLUMNS:
            instants = pd.to_datetime(frame[column], utc=True)
            frame[column] = instants.astype("datetime64[us, UTC]")
        elif column in _TEXT_COLUMNS:
            frame[column] = frame[column].astype("str")
    return frame


def _received(receipts: list[Receipt]) -> pd.DataFrame:
    rows = pd.DataFrame([r.row() for r in receipts], columns=RECEIVED_COLUMNS)
    return _typed(rows)


def _power(recording: Recording) -> pd.DataFrame:
    rows = [
        (client.client_id, start, end, state)
        for client in recording.clients.values()
        for start, end, state in client.segments
    ]
    return _typed(pd.DataFrame(rows, columns=POWER_COLUMNS))


def _off_in_window(recording: Recording, engine: _Engine) -> list[Violation]:
    rows: list[Violation] = []
    for receipt in recording.receipts:
        off = receipt.valid and receipt.payload["power"]["desired_state"] == "off"
        if not off or receipt.topic != client_topic(receipt.client_id):
            continue
        # Right if any version in force then says off: at an instant with
        # edits, the publisher may have published before them.
        if all(s == "on" for s in engine.states(receipt.client_id, receipt.at)):
            detail = f"off intent {receipt.payload['intent_id']} inside an on window"
            rows.append(("on_window", receipt.client_id, receipt.at, detail))
    return rows + _dark(recording, engine)


def _dark(recording: Recording, engine: _Engine) -> list[Violation]:
    """One violation per stretch of a TV off where the ruling version says on."""
    rows: list[Violation] = []
    on = engine.on_spans()
    excused = (
        engine.excused_spans(_graces(recording)) if len(engine.versions) > 1 else {}
    )
    for client in recording.clients.values():
        spans = on.get(client.client_id)
        if not spans:
            continue
        off = [
            (_ns(start), _ns(end))
            for start, end, power in client.segments
            if power == "off"
        ]
        excuses = excused.get(client.client_id, [])
        dark: list[Span] = []
        for lo, hi in _merged(off):
            # The grace after an edit excuses a TV that switches off then,
            # not one that was off already (an outage, a late join).
            mine = [(a, b) for a, b in excuses if a <= lo < b]
            dark += _subtract(_intersect([(lo, hi)], spans), mine)
        for lo, hi in _merged(dark):
            detail = f"TV off inside an on window for {_duration(hi - lo)}"
            rows.append(("on_window", client.client_id, _dt(lo), detail))
    return rows


def _graces(recording: Recording) -> dict[str, int]:
    """Each client's longest grace received (30 s if none): one pass."""
    graces: dict[str, int] = {}
    for r in recording.receipts:
        if r.valid:
            grace = int(r.payload["power"]["grace_seconds"])
            graces[r.client_id] = max(grace, graces.get(r.client_id, grace))
    return graces


def _retained(recording: Recording, engine: _Engine) -> list[Violation]:
    rows: list[Violation] = []
    for reconnect in recording.reconnects:
        client_id, at = reconnect.client_id, reconnect.at
        if _publisher_stopped(recording, at):
            continue
        if reconnect.learned == 0:
            detail = f"{reconnect.kind}: no retained intent arrived"
            rows.append(("retained", client_id, at, detail))
            continue
        # Right if some version in force then says it: at an instant with
        # edits, the client may have connected before them.
        expected = sorted({s for s in engine.states(client_id, at) if s is not None})
        own = [
            r
            for r in recording.receipts
            if r.via == "reconnect"
            and r.client_id == client_id
            and r.at == at
            and r.topic.split("/")[1] == client_id
        ]
        for receipt in own:
            got = receipt.payload.get("power", {}).get("desired_state")
            if (expected and got not in expected) or not receipt.retained:
                detail = (
                    f"{reconnect.kind}: learned {got} (retained={receipt.retained}), "
                    f"engine says {' or '.join(expected) or None}"
                )
                rows.append(("retained", client_id, at, detail))
    return rows


def _payloads(recording: Recording) -> list[Violation]:
    return [
        ("payload", r.client_id, r.at, f"{r.topic}: {r.problem}")
        for r in recording.receipts
        if not r.valid
        and not (r.problem.startswith(EXPIRED) and _publisher_stopped(recording, r.at))
    ]


def _publisher_stopped(recording: Recording, at: datetime) -> bool:
    return any(lo <= at < hi for lo, hi in recording.scenario.outages)


def _audit(recording: Recording, engine: _Engine) -> list[Violation]:
    records = read_publish_log(recording.log_lines, source="sim")
    if records.empty:
        return [("audit", None, recording.scenario.start, "nothing was published")]
    rebuilt = rebuild(records)
    # A rebuilt timeline ends at the log's last publish; the publisher
    # refreshes every intent at half its lifetime, so that is not long ago.
    log_end = int(records["issued_at"].max())
    lo, hi = engine.span
    outages = [(_ns(a), _ns(b)) for a, b in recording.scenario.outages]
    if outages and outages[-1][1] >= hi:
        hi = outages.pop()[0]  # stopped to the end: the log ends at the stop
    refresh_ns = recording.scenario.schedule.ttl_seconds * NS // 2
    rows: list[Violation] = []
    if hi - log_end > refresh_ns:
        detail = (
            f"the log ends at {format_instant(_dt(log_end))}, before a refresh was due"
        )
        rows.append(("audit", None, _dt(log_end), detail))
    if log_end <= lo:
        return rows
    expected = engine.versions[0][1]
    # The stretches the publisher ran, each from a (re)start that publishes
    # everything again.
    bounds = [lo, *(t for outage in outages for t in outage), log_end]
    stretches = [
        (start, end)
        for start, end in zip(bounds[::2], bounds[1::2], strict=True)
        if start < end
    ]
    if not stretches:
        return rows
    differences = pd.concat(
        [compare(rebuilt, expected, span=stretch) for stretch in stretches]
    )
    return rows + [
        (
            "audit",
            str(d.client_id),
            _dt(d.start),
            f"until {format_instant(_dt(d.end))}: logged {d.logged_state} "
            f"{d.logged_reason}, engine {d.expected_state} {d.expected_reason}",
        )
        for d in differences.itertuples()
    ]


def _expectation(
    expectation: Expectation, received: pd.DataFrame, power: pd.DataFrame
) -> list[Violation]:
    client_id = expectation.client_id
    mine = received[
        (received["client_id"] == client_id)
        & (received["topic"] == client_topic(client_id))
        & received["valid"]
    ]
    tv = power[power["client_id"] == client_id]
    if expectation.no_off_between is not None:
        return _no_off(expectation, *expectation.no_off_between, mine, tv)
    return _state_at(expectation, mine, tv)


def _no_off(
    expectation: Expectation,
    lo: datetime,
    hi: datetime,
    mine: pd.DataFrame,
    tv: pd.DataFrame,
) -> list[Violation]:
    """No ``off`` intent received in ``[lo, hi)``, and the TV never off there."""
    client_id, where = expectation.client_id, f"{expectation.entry}: "
    rows: list[Violation] = []
    off = mine[
        (mine["desired_state"] == "off") & (mine["at"] >= lo) & (mine["at"] < hi)
    ]
    # One row per intent: its refreshes repeat it, and would only add noise.
    for intent_id, copies in off.groupby("intent_id", sort=False)["at"]:
        detail = f"{where}off intent {intent_id} received"
        if len(copies) > 1:
            detail += (
                f" ({len(copies)} times, the last at {format_instant(copies.max())})"
            )
        rows.append(("expect", client_id, copies.min(), detail))
    dark = tv[(tv["power"] == "off") & (tv["start"] < hi) & (tv["end"] > lo)]
    for start in dark["start"]:
        rows.append(("expect", client_id, max(start, lo), where + "TV off"))
    return rows


def _state_at(
    expectation: Expectation, mine: pd.DataFrame, tv: pd.DataFrame
) -> list[Violation]:
    """The TV's power, and the last received intent's reason, at the instant."""
    client_id, where, at = (
        expectation.client_id,
        f"{expectation.entry}: ",
        expectation.at,
    )
    assert at is not None
    rows: list[Violation] = []
    if expectation.state is not None:
        # A stretch that ends at the instant counts only if none starts there.
        current = tv[(tv["start"] <= at) & (tv["end"] >= at)]
        state = str(current["power"].iloc[-1]) if len(current) else "absent"
        if state != expectation.state:
            detail = f"{where}TV {state}, expected {expectation.state}"
            rows.append(("expect", client_id, at, detail))
    if expectation.reason is not None:
        before = mine[mine["at"] <= at]
        reason = str(before["reason"].iloc[-1]) if len(before) else "none"
        if reason != expectation.reason:
            detail = f"{where}reason {reason}, expected {expectation.reason}"
            rows.append(("expect", client_id, at, detail))
    return rows


def _ns(instant: datetime) -> int:
    return int(instant.timestamp()) * NS


def _dt(ns: Any) -> datetime:
    return datetime.fromtimestamp(int(ns) / NS, tz=UTC)


def _clipped(rows: pd.DataFrame, lo: Any, hi: Any) -> pd.DataFrame:
    """``rows``' client and span clipped to ``[lo, hi)``; empty ones dropped."""
    start = np.maximum(rows["start"].to_numpy(dtype=np.int64), lo)
    end = np.minimum(rows["end"].to_numpy(dtype=np.int64), hi)
    keep = start < end
    return pd.DataFrame(
        {
            "client_id": rows["client_id"].to_numpy()[keep],
            "start": start[keep],
            "end": end[keep],
        }
    )


def _spans_by_client(frames: list[pd.DataFrame]) -> dict[str, list[Span]]:
    """Each client's spans of ``frames``, sorted, overlapping ones merged."""
    if not frames:
        return {}
    rows = pd.concat(frames, ignore_index=True)
    return {
        str(client_id): _merged(
            list(zip(group["start"].tolist(), group["end"].tolist(), strict=True))
        )
        for client_id, group in rows.groupby("client_id", sort=False)
    }


def _merged(spans: list[Span]) -> list[Span]:
    """Sorted spans with touching or overlapping ones joined."""
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """Where two sorted lists of disjoint spans overlap."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(a: list[Span], b: list[Span]) -> list[Span]:
    """What of sorted disjoint spans ``a`` sorted disjoint spans ``b`` leave."""
    out: list[Span] = []
    j = 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > start:
                out.append((start, b[k][0]))
            start = max(start, b[k][1])
            k += 1
        if start < end:
            out.append((start, end))
    return out


def _duration(ns: int) -> str:
    """``45 min``, ``1 h 5 min``, ``30 s``."""
    seconds = ns // NS
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "min"), (seconds, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"
