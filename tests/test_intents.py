"""The v1 payload: schema, UTC times, expiry, deterministic ids."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvpower.intents import (
    Intent,
    encode,
    intent_schema,
    schema_problem,
    validate_payload,
)

ISSUED = datetime(2019, 3, 5, 17, 59, 50, tzinfo=UTC)

ON = Intent(
    client_id="machbar-hall",
    group_id="machbar",
    desired_state="on",
    reason="event_window_active",
    grace_seconds=30,
    window=("2019-03-05T13:00:00Z", "2019-03-05T20:00:00Z"),
    segment_start="2019-03-05T13:00:00Z",
)
OFF = Intent(
    client_id="machbar-hall",
    group_id="machbar",
    desired_state="off",
    reason="no_active_event",
    grace_seconds=30,
    window=None,
    segment_start="2019-03-05T20:00:00Z",
)


def test_schema_is_valid_draft_2020_12() -> None:
    schema = intent_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("intent", [ON, OFF], ids=["on", "off"])
def test_payload_is_schema_valid_with_utc_times_and_expiry(intent: Intent) -> None:
    payload = intent.payload(ISSUED, ttl_seconds=600)
    validate_payload(payload)
    assert payload["issued_at"] == "2019-03-05T17:59:50Z"
    assert payload["expires_at"] == "2019-03-05T18:09:50Z"
    assert payload["target"] == {"client_id": "machbar-hall", "group_id": "machbar"}


def test_payload_of_an_offset_instant_is_utc_whole_seconds() -> None:
    issued = datetime(
        2019, 3, 5, 18, 59, 50, 999_000, tzinfo=timezone(timedelta(hours=1))
    )
    payload = ON.payload(issued, ttl_seconds=60)
    assert payload["issued_at"] == "2019-03-05T17:59:50Z"
    assert payload["expires_at"] == "2019-03-05T18:00:50Z"


def test_on_window_and_off_null_are_required_by_the_schema() -> None:
    on_without_window = ON.payload(ISSUED, 600) | {"event_window": None}
    off_with_window = OFF.payload(ISSUED, 600) | {
        "event_window": {"start": "2019-03-05T13:00:00Z", "end": "2019-03-05T20:00:00Z"}
    }
    for payload in (on_without_window, off_with_window):
        with pytest.raises(jsonschema.ValidationError):
            validate_payload(payload)


@pytest.mark.parametrize(
    "change",
    [
        {"issued_at": "2019-03-05T17:59:50+00:00"},
        {"expires_at": "2019-03-05T18:09:50.5Z"},
        {"intent_id": "not-a-uuid"},
        {"target": {}},
        {"target": {"client_id": "a/b"}},
        {"power": {"desired_state": "standby", "reason": "x", "grace_seconds": 30}},
    ],
)
def test_schema_rejects_malformed_payloads(change: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_payload(ON.payload(ISSUED, 600) | change)


def test_same_meaning_gives_the_same_id_at_any_time() -> None:
    first = ON.payload(ISSUED, 600)
    later = dataclasses.replace(ON).payload(ISSUED + timedelta(minutes=5), 600)
    assert first["intent_id"] == later["intent_id"]
    assert first["issued_at"] != later["issued_at"]


@pytest.mark.parametrize(
    "change",
    [
        {"desired_state": "off", "reason": "client_override_off", "window": None},
        {"reason": "client_override_on"},
        {"window": ("2019-03-05T13:00:00Z", "2019-03-05T21:00:00Z")},
        {"segment_start": "2019-03-05T14:00:00Z"},
        {"client_id": "machbar-entrance"},
        {"group_id": None},
    ],
)
def test_changed_meaning_gives_a_new_id(change: dict[str, object]) -> None:
    assert dataclasses.replace(ON, **change).intent_id != ON.intent_id  # type: ignore[arg-type]


def test_grace_is_not_part_of_the_meaning() -> None:
    assert dataclasses.replace(ON, grace_seconds=90).intent_id == ON.intent_id


def test_encoding_is_byte_identical_for_the_same_inputs() -> None:
    first = encode(ON.payload(ISSUED, 600))
    second = encode(dataclasses.replace(ON).payload(ISSUED, 600))
    assert first == second
    assert json.loads(first) == ON.payload(ISSUED, 600)


@given(
    state=st.sampled_from(["on", "off"]),
    seconds=st.integers(min_value=0, max_value=4_000_000_000),
    ttl=st.integers(min_value=60, max_value=86_400),
)
def test_every_payload_is_schema_valid(state: str, seconds: int, ttl: int) -> None:
    issued = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    intent = ON if state == "on" else OFF
    payload = intent.payload(issued, ttl)
    validate_payload(payload)
    assert (
        payload["expires_at"] > payload["issued_at"] or len(payload["issued_at"]) != 20
    )


# Parts of a payload as a sender might get them wrong: each replaces one
# top-level field, or one field of "power" or "target".
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=6,
)
_SAMPLES = st.sampled_from(
    [
        "2019-03-05T17:59:50Z",
        "2019-03-05T17:59:50+00:00",
        "on",
        "off",
        "standby",
        "machbar",
        "a/b",
        "",
        30,
        -1,
        None,
        {},
        {"client_id": "x"},
        {"start": "2019-03-05T13:00:00Z", "end": "2019-03-05T20:00:00Z"},
    ]
)


@given(
    base=st.sampled_from([ON, OFF]),
    where=st.sampled_from([None, "power", "target"]),
    key=st.sampled_from(
        [
            "schema_version",
            "intent_id",
            "issued_at",
            "expires_at",
            "target",
            "power",
            "event_window",
            "desired_state",
            "reason",
            "grace_seconds",
            "client_id",
            "group_id",
            "extra",
        ]
    ),
    value=_SAMPLES | _JSON,
    drop=st.booleans(),
)
def test_the_fast_check_agrees_with_the_reference_validator(
    base: Intent, where: str | None, key: str, value: object, drop: bool
) -> None:
    payload = base.payload(ISSUED, 600)
    part = payload if where is None else dict(payload[where])
    if drop:
        part.pop(key, None)
    else:
        part[key] = value
    if where is not None:
        payload[where] = part

    try:
        validate_payload(payload)
    except jsonschema.ValidationError:
        assert schema_problem(payload) != ""
    else:
        assert schema_problem(payload) == ""
