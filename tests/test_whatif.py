"""What-if questions: a change of a scenario's schedule, and what it changes."""

from __future__ import annotations

from pathlib import Path

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
    ],
)
def test_a_bad_change_names_what_is_wrong(
    change: dict[str, object], message: str
) -> None:
    plan = load_scenario(EDIT_EXTEND)

    with pytest.raises(ScheduleError) as error:
        what_if(plan, change)

    assert str(error.value).startswith(f"{EDIT_EXTEND}: {message}")
