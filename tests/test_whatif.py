"""What-if questions: a change of a scenario's schedule, and what it changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tvpower.errors import ScheduleError
from tvpower.sim import load_scenario, what_if

ROOT = Path(__file__).resolve().parent.parent
EDIT_EXTEND = ROOT / "scenarios" / "edit-extend.yaml"
MAKERSPACE = ROOT / "scenarios" / "makerspace-potsdam.yaml"


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


def test_an_extended_event_keeps_the_lobby_on_longer() -> None:
    plan = load_scenario(EDIT_EXTEND)
    change = {"edit": {"id": "afternoon-talk", "end": "2026-03-02T15:00:00Z"}}

    answer = what_if(plan, change)

    assert answer.change == change
    assert {e.id: e.end for e in answer.schedule.events}["afternoon-talk"] == _utc(
        "2026-03-02T15:00:00Z"
    )
    segments = answer.segments
    # The kiosk has no part in the talk: nothing of its changes.
    assert set(segments["client_id"]) == {"lobby-left", "lobby-right"}
    left = segments[segments["client_id"] == "lobby-left"]
    on = left[left["desired_state"] == "on"].set_index("schedule")
    assert on.loc["original", "end"] == _utc("2026-03-02T14:00:00Z")
    assert on.loc["edited", "end"] == _utc("2026-03-02T15:00:00Z")
    assert on.loc["edited", "start"] == on.loc["original", "start"]
    # The edited schedule's off starts when its on ends.
    off = left[left["desired_state"] == "off"].set_index("schedule")
    assert off.loc["edited", "start"] == _utc("2026-03-02T15:00:00Z")


def test_without_a_change_the_first_event_in_the_span_is_removed() -> None:
    plan = load_scenario(EDIT_EXTEND)

    answer = what_if(plan)

    assert answer.change == {"cancel": "afternoon-talk"}
    assert "afternoon-talk" not in {e.id for e in answer.schedule.events}
    edited = answer.segments[answer.segments["schedule"] == "edited"]
    assert set(edited["desired_state"]) == {"off"}
    assert set(answer.segments["schedule"]) == {"original", "edited"}


def test_a_calendar_schedule_keeps_its_calendars() -> None:
    plan = load_scenario(MAKERSPACE)
    change = {
        "add": {
            "id": "late-session",
            "group": "machbar",
            "start": "2019-03-05T20:00:00Z",
            "end": "2019-03-05T21:30:00Z",
        }
    }

    answer = what_if(plan, change)

    # The window of 13:00-20:00 from the calendar now runs on to 21:30.
    on = answer.segments[answer.segments["desired_state"] == "on"]
    assert (on[on["schedule"] == "edited"]["end"] == _utc("2019-03-05T21:30:00Z")).all()
    assert len(on[on["schedule"] == "edited"]) == len(plan.schedule.clients)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "welcome",
            "what_if: expected a change such as {cancel: EVENT_ID} or {edit: "
            "{id: EVENT_ID, end: ...}}, got 'welcome'",
        ),
        (
            {"restart": "publisher"},
            "what_if: expected one of cancel, edit, add, got restart",
        ),
        (
            {"cancel": "nope", "edit": {"id": "nope"}},
            "what_if: expected one of cancel, edit, add, got cancel, edit",
        ),
        (
            {"edit": {"id": "nope", "end": "2026-03-02T15:00:00Z"}},
            "what_if: field 'edit.id': expected the id of an event in the "
            "schedule then, got 'nope'",
        ),
        (
            {"edit": {"id": "afternoon-talk", "end": "tomorrow"}},
            "what_if: field 'edit': the schedule after it is not valid: "
            "events[4] (id 'afternoon-talk'): end: expected an ISO 8601 date and "
            "time like '2019-03-05T14:00:00+01:00', got 'tomorrow'",
        ),
        (
            {"edit": {"id": "afternoon-talk", ("end",): "2026-03-02T15:00:00Z"}},
            "what_if: field 'edit': expected field names that are text, got ('end',)",
        ),
        (
            {"edit": {"id": "afternoon-talk", "end": 1 + 2j}},
            "what_if: field 'edit': expected values a YAML schedule can hold, "
            "got (1+2j)",
        ),
        (
            {"edit": {"id": "afternoon-talk", "end": pd.Series([1, 2])}},
            "what_if: field 'edit': expected values a YAML schedule can hold, "
            "got 0 1 1 2 dtype: int64",
        ),
        (
            {"add": {"id": 3}},
            "what_if: field 'add.id': expected an event id that is text, got 3",
        ),
    ],
)
def test_a_bad_change_names_what_is_wrong(
    change: dict[str, object], message: str
) -> None:
    plan = load_scenario(EDIT_EXTEND)

    with pytest.raises(ScheduleError) as error:
        what_if(plan, change)

    assert str(error.value).startswith(f"{EDIT_EXTEND}: {message}")


def test_instants_may_be_given_as_timestamps() -> None:
    plan = load_scenario(EDIT_EXTEND)
    as_text = {"edit": {"id": "afternoon-talk", "end": "2026-03-02T15:00:00Z"}}
    as_timestamp = {
        "edit": {"id": "afternoon-talk", "end": _utc("2026-03-02T15:00:00Z")}
    }

    as_numpy = {
        "edit": {"id": "afternoon-talk", "end": np.datetime64("2026-03-02T16:00:00")}
    }

    expected = what_if(plan, as_text).segments
    assert not expected.empty
    assert what_if(plan, as_timestamp).segments.equals(expected)
    # A naive instant is the schedule's local time, Berlin's CET here.
    assert what_if(plan, as_numpy).segments.equals(expected)


def test_a_scenario_may_be_named_by_its_path() -> None:
    change = {"edit": {"id": "afternoon-talk", "end": "2026-03-02T15:00:00Z"}}

    by_path = what_if(str(EDIT_EXTEND), change)

    assert by_path.segments.equals(what_if(load_scenario(EDIT_EXTEND), change).segments)


OLD_SERIES = """\
timezone: UTC
clients: {tv: {}}
events:
  - {id: what-if, client: tv, start: 2020-01-01T09:00:00Z,
     end: 2020-01-01T10:00:00Z, rrule: "FREQ=DAILY;COUNT=3"}
  - {id: today, client: tv, start: 2026-03-02T09:00:00Z, end: 2026-03-02T10:00:00Z}
simulation: {start: 2026-03-02T08:00:00Z, end: 2026-03-02T12:00:00Z}
"""


def test_the_default_change_removes_an_event_that_occurs_in_the_span(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old-series.yaml"
    path.write_text(OLD_SERIES)

    answer = what_if(load_scenario(path))

    # Not the series that ended in 2020, which would change nothing.
    assert answer.change == {"cancel": "today"}
    assert not answer.segments.empty


def test_the_default_addition_takes_a_free_id(tmp_path: Path) -> None:
    path = tmp_path / "nothing-in-span.yaml"
    path.write_text(OLD_SERIES.replace("  - {id: today", "  # {id: today"))

    answer = what_if(load_scenario(path))

    assert answer.change["add"]["id"] == "what-if-1"
    assert set(answer.segments["schedule"]) == {"original", "edited"}
