"""Named examples of the timeline engine, one rule of the contract each.

Times are written as ``"HH:MM"`` on one day; a client's segments read as
``(start, end, desired_state, reason, window)`` with ``window`` None for
``off``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tvpower.engine import NS, Timeline, compute_timeline, fleet_of, timeline_around
from tvpower.intents import intents_from
from tvpower.schedule import Client, Event, Group, Schedule

from .strategies import ClientSpec, GroupSpec, Occurrence, Scenario

DAY = ("00:00", "24:00")

Segment = tuple[str, str, str, str, tuple[str, str] | None]


def hm(text: str) -> int:
    """Seconds since midnight of ``"HH:MM"``."""
    hours, minutes = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def clock(ns: int, origin: int = 0) -> str:
    """``"HH:MM"`` of ``ns`` after ``origin`` (both ns)."""
    minutes = (ns - origin) // NS // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def event(owner: str, start: str, end: str, *, kind: str = "group") -> Occurrence:
    return Occurrence(kind, owner, "event", hm(start), hm(end))


def override(client: str, state: str, start: str, end: str) -> Occurrence:
    return Occurrence("client", client, state, hm(start), hm(end))


def timeline(
    groups: tuple[GroupSpec, ...],
    clients: tuple[ClientSpec, ...],
    occurrences: tuple[Occurrence, ...],
    span: tuple[str, str] = DAY,
) -> Timeline:
    scenario = Scenario(groups, clients, occurrences, hm(span[0]), hm(span[1]))
    return scenario.timeline()


def segments(timeline: Timeline, client_id: str, origin: int = 0) -> list[Segment]:
    """The client's segments, times as ``"HH:MM"`` after ``origin`` (ns)."""
    rows = timeline.client_segments(timeline.start, timeline.end)
    rows = rows[rows["client_id"] == client_id]
    return [
        (
            clock(r["start"], origin),
            clock(r["end"], origin),
            r["desired_state"],
            r["reason"],
            (clock(r["window_start"], origin), clock(r["window_end"], origin))
            if r["desired_state"] == "on"
            else None,
        )
        for r in rows.to_dict("records")
    ]


def off(start: str, end: str) -> Segment:
    return (start, end, "off", "no_active_event", None)


def on(start: str, end: str, window: tuple[str, str] | None = None) -> Segment:
    return (start, end, "on", "event_window_active", window or (start, end))


ROOM = GroupSpec("room")
LOBBY = ClientSpec("lobby", "room", own=False)


def test_back_to_back_events_are_one_on_segment() -> None:
    events = (event("room", "09:00", "10:00"), event("room", "10:00", "11:00"))

    result = timeline((ROOM,), (LOBBY,), events)

    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "11:00"),
        off("11:00", "24:00"),
    ]


def test_overlapping_events_are_one_window() -> None:
    events = (
        event("room", "09:00", "10:30"),
        event("room", "09:30", "09:45"),
        event("room", "10:00", "11:00"),
    )

    result = timeline((ROOM,), (LOBBY,), events)

    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "11:00"),
        off("11:00", "24:00"),
    ]


def test_merge_gap_bridges_a_shorter_gap() -> None:
    room = GroupSpec("room", gap=300)
    lobby = ClientSpec("lobby", "room", own=False, gap=300)
    events = (event("room", "09:00", "10:00"), event("room", "10:04", "11:00"))

    result = timeline((room,), (lobby,), events)

    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "11:00"),
        off("11:00", "24:00"),
    ]


def test_merge_gap_leaves_a_gap_exactly_as_long_off() -> None:
    # merge_gap bridges strictly shorter gaps; touching windows (a gap of
    # zero) merge whatever merge_gap is.
    room = GroupSpec("room", gap=300)
    lobby = ClientSpec("lobby", "room", own=False, gap=300)
    events = (event("room", "09:00", "10:00"), event("room", "10:05", "11:00"))

    result = timeline((room,), (lobby,), events)

    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "10:00"),
        off("10:00", "10:05"),
        on("10:05", "11:00"),
        off("11:00", "24:00"),
    ]


def test_merge_gap_leaves_a_longer_gap_off() -> None:
    room = GroupSpec("room", gap=300)
    lobby = ClientSpec("lobby", "room", own=False, gap=300)
    events = (event("room", "09:00", "10:00"), event("room", "10:06", "11:00"))

    result = timeline((room,), (lobby,), events)

    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "10:00"),
        off("10:00", "10:06"),
        on("10:06", "11:00"),
        off("11:00", "24:00"),
    ]


def test_lead_seconds_turns_the_window_on_early() -> None:
    room = GroupSpec("room", lead=600)
    lobby = ClientSpec("lobby", "room", own=False, lead=600)
    events = (event("room", "09:00", "10:00"), event("room", "13:00", "14:00"))

    result = timeline((room,), (lobby,), events)

    assert segments(result, "lobby") == [
        off("00:00", "08:50"),
        on("08:50", "10:00"),
        off("10:00", "12:50"),
        on("12:50", "14:00"),
        off("14:00", "24:00"),
    ]


def test_lead_before_a_later_event_covers_a_gap_shorter_than_it() -> None:
    room = GroupSpec("room", lead=600)
    lobby = ClientSpec("lobby", "room", own=False, lead=600)
    events = (event("room", "09:00", "10:00"), event("room", "10:08", "11:00"))

    result = timeline((room,), (lobby,), events)

    assert segments(result, "lobby") == [
        off("00:00", "08:50"),
        on("08:50", "11:00"),
        off("11:00", "24:00"),
    ]


def test_client_override_off_inside_a_group_window() -> None:
    hall = ClientSpec("hall", "room")
    occurrences = (
        event("room", "09:00", "12:00"),
        override("hall", "off", "10:00", "11:00"),
    )

    result = timeline((ROOM,), (hall, LOBBY), occurrences)

    assert segments(result, "hall") == [
        off("00:00", "09:00"),
        on("09:00", "10:00"),
        ("10:00", "11:00", "off", "client_override_off", None),
        on("11:00", "12:00"),
        off("12:00", "24:00"),
    ]
    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "12:00"),
        off("12:00", "24:00"),
    ]


def test_client_override_on_outside_any_event() -> None:
    desk = ClientSpec("desk")

    result = timeline((), (desk,), (override("desk", "on", "18:00", "19:00"),))

    assert segments(result, "desk") == [
        off("00:00", "18:00"),
        ("18:00", "19:00", "on", "client_override_on", ("18:00", "19:00")),
        off("19:00", "24:00"),
    ]


def test_override_on_touching_an_event_shares_its_window() -> None:
    hall = ClientSpec("hall", "room")
    occurrences = (
        event("room", "09:00", "10:00"),
        override("hall", "on", "10:00", "10:30"),
    )

    result = timeline((ROOM,), (hall,), occurrences)

    assert segments(result, "hall") == [
        off("00:00", "09:00"),
        on("09:00", "10:00", window=("09:00", "10:30")),
        ("10:00", "10:30", "on", "client_override_on", ("09:00", "10:30")),
        off("10:30", "24:00"),
    ]


def test_override_off_wins_over_override_on() -> None:
    desk = ClientSpec("desk")
    occurrences = (
        override("desk", "on", "09:00", "12:00"),
        override("desk", "off", "10:00", "11:00"),
    )

    result = timeline((), (desk,), occurrences)

    assert segments(result, "desk") == [
        off("00:00", "09:00"),
        ("09:00", "10:00", "on", "client_override_on", ("09:00", "10:00")),
        ("10:00", "11:00", "off", "client_override_off", None),
        ("11:00", "12:00", "on", "client_override_on", ("11:00", "12:00")),
        off("12:00", "24:00"),
    ]


def test_client_event_adds_to_its_group_events() -> None:
    hall = ClientSpec("hall", "room")
    occurrences = (
        event("room", "09:00", "10:00"),
        event("hall", "10:00", "10:30", kind="client"),
        event("hall", "14:00", "15:00", kind="client"),
    )

    result = timeline((ROOM,), (hall, LOBBY), occurrences)

    assert segments(result, "hall") == [
        off("00:00", "09:00"),
        on("09:00", "10:30"),
        off("10:30", "14:00"),
        on("14:00", "15:00"),
        off("15:00", "24:00"),
    ]
    assert segments(result, "lobby") == [
        off("00:00", "09:00"),
        on("09:00", "10:00"),
        off("10:00", "24:00"),
    ]


def test_client_without_group_or_events_is_off_all_along() -> None:
    result = timeline((), (ClientSpec("desk", grace=45),), ())

    now = result.at(hm("12:00") * NS)

    assert segments(result, "desk") == [off("00:00", "24:00")]
    row = now.loc["desk"]
    assert (row["desired_state"], row["reason"]) == ("off", "no_active_event")
    assert (row["window_start"], row["window_end"]) == (-1, -1)
    assert row["grace_seconds"] == 45
    assert not row["start_known"]
    assert not row["end_known"]


def test_window_cut_by_the_range_is_clipped_and_marked_unknown() -> None:
    events = (event("room", "08:00", "12:00"),)

    result = timeline((ROOM,), (LOBBY,), events, span=("10:00", "11:00"))

    row = result.at(hm("10:30") * NS).loc["lobby"]
    assert segments(result, "lobby") == [on("10:00", "11:00")]
    assert (row["start_known"], row["end_known"]) == (False, False)


def test_clients_of_a_group_share_one_profile() -> None:
    names = tuple(f"screen-{i:02d}" for i in range(50))
    clients = [Client(name, "room", UTC_ZONE, 30, 0, 0) for name in names]
    hall = Client("hall", "room", UTC_ZONE, 30, 600, 0, own_settings=True)
    schedule = room_schedule([*clients, hall], merge_gap=0)

    result = compute_timeline(schedule, DAY_START, DAY_START + timedelta(days=1))

    profiles = fleet_of(schedule).clients["profile"]
    assert set(profiles[list(names)]) == {0}  # the group's profile
    assert profiles["hall"] == 1
    # Computed once per profile: the group's off, on, off, on, off; the
    # hall's gap of its own bridges 10:00-10:05: off, on, off.
    assert result.segments.groupby("profile").size().tolist() == [5, 3]
    now = result.at(utc_ns("10:02"))
    assert set(now.loc[list(names), "reason"]) == {"no_active_event"}
    assert now.loc["hall", "reason"] == "event_window_active"


def test_compute_timeline_bridges_a_gap_at_the_end_of_its_range() -> None:
    lobby = Client("lobby", "room", UTC_ZONE, 30, 600, 0)
    schedule = room_schedule([lobby], merge_gap=600)
    end = DAY_START.replace(hour=10, minute=2)

    result = compute_timeline(schedule, DAY_START, end)

    # 10:00-10:05 is bridged by merge_gap: on up to the end of the range.
    assert segments(result, "lobby", origin=utc_ns("00:00")) == [
        off("00:00", "09:00"),
        on("09:00", "10:02"),
    ]


UTC_ZONE = ZoneInfo("UTC")
DAY_START = datetime(2019, 3, 5, tzinfo=UTC)


def utc_ns(text: str) -> int:
    return int(DAY_START.timestamp()) * NS + hm(text) * NS


def room_schedule(clients: list[Client], *, merge_gap: int) -> Schedule:
    """Group ``room`` with ``clients``: events 09:00-10:00 and 10:05-11:00 UTC."""
    ids = tuple(c.id for c in clients)
    room = Group("room", ids, UTC_ZONE, 30, merge_gap, 0)
    events = tuple(
        Event(
            f"talk-{start}",
            "group",
            "room",
            DAY_START + timedelta(seconds=hm(start)),
            DAY_START + timedelta(seconds=hm(end)),
        )
        for start, end in (("09:00", "10:00"), ("10:05", "11:00"))
    )
    return Schedule(
        Path("room.yaml"),
        UTC_ZONE,
        600,
        {"room": room},
        {c.id: c for c in clients},
        events,
    )


def test_off_before_the_first_event_has_one_id_whenever_asked() -> None:
    lobby = Client("lobby", "room", UTC_ZONE, 30, 0, 0)
    schedule = room_schedule([lobby], merge_gap=0)
    instants = [DAY_START - timedelta(days=d) for d in (400, 30, 1)]
    instants.append(DAY_START + timedelta(hours=8, minutes=59))

    ids = set()
    for instant in instants:
        around = timeline_around(schedule, instant)
        now = around.at(int(instant.timestamp()) * NS)
        # Nothing happens before 09:00: off since the earliest instant.
        assert around.origin
        assert now.loc["lobby", "start"] == 0
        assert bool(now.loc["lobby", "start_known"])
        ids |= {i.intent_id for i in intents_from(now).values()}
    assert len(ids) == 1


def test_a_timeline_that_starts_after_an_event_has_no_origin() -> None:
    lobby = Client("lobby", "room", UTC_ZONE, 30, 0, 0)
    schedule = room_schedule([lobby], merge_gap=0)
    noon = DAY_START.replace(hour=12)

    late = compute_timeline(schedule, DAY_START.replace(hour=9, minute=30), noon)
    # first_start leaves a day of slack for floating times.
    early = compute_timeline(schedule, DAY_START - timedelta(days=2), noon)

    assert not late.origin
    assert early.origin
    # The 10:00-10:05 gap keeps the start it has, origin or not.
    at = utc_ns("10:02")
    assert late.at(at).loc["lobby", "start"] == utc_ns("10:00")
    assert early.at(at).loc["lobby", "start"] == utc_ns("10:00")
