"""Power intents, v1: what a client should do, why, and until when.

An :class:`Intent` is the meaning; :func:`Intent.payload` stamps it with
``issued_at`` and ``expires_at`` for one publish. The ``intent_id`` is a
name-based UUID (version 5) over the meaning alone, so the same meaning has
the same id after a restart or from a second replica, and any change of
meaning gives a new one.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property, lru_cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
import numpy as np
import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "Intent",
    "encode",
    "format_instant",
    "intent_schema",
    "intents_from",
    "schema_problem",
    "validate_payload",
]

SCHEMA_VERSION = "1.0"

# Fixed forever: changing it would give every intent a new id.
_ID_NAMESPACE = uuid.UUID("6f1c2d8e-4b7a-5e3f-9a21-0c5d7e8f9a10")

_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_NS = 1_000_000_000


@dataclass(frozen=True)
class Intent:
    """The meaning of one intent, times as UTC ``Z`` strings.

    ``client_id`` is None on a group topic. ``window`` is the whole merged
    ``on`` window, None for ``off``. ``segment_start`` is when this state
    began, None when the engine could not see that far back.
    """

    client_id: str | None
    group_id: str | None
    desired_state: str
    reason: str
    grace_seconds: int
    window: tuple[str, str] | None
    segment_start: str | None

    @property
    def target(self) -> dict[str, str]:
        target = {"client_id": self.client_id, "group_id": self.group_id}
        return {k: v for k, v in target.items() if v is not None}

    @cached_property
    def intent_id(self) -> str:
        """Name-based UUID over target, state, reason, window and segment start."""
        window_start, window_end = self.window or ("", "")
        fields = (
            self.client_id or "",
            self.group_id or "",
            self.desired_state,
            self.reason,
            window_start,
            window_end,
            self.segment_start or "",
        )
        # NUL cannot occur in any field (ids are MQTT topic levels, the rest
        # a fixed vocabulary and timestamps), so the name is unambiguous.
        name = "\0".join(fields)
        return str(uuid.uuid5(_ID_NAMESPACE, name))

    def payload(
        self,
        issued_at: datetime,
        ttl_seconds: int,
        *,
        valid_until: datetime | None = None,
    ) -> dict[str, Any]:
        """The v1 payload published at ``issued_at``, valid for ``ttl_seconds``.

        ``valid_until``, when later, extends ``expires_at`` to it: the opt-in
        policy that keeps an ``on`` intent valid to its window's end.
        """
        issued = issued_at.astimezone(UTC).replace(microsecond=0)
        expires = issued + timedelta(seconds=ttl_seconds)
        if valid_until is not None:
            expires = max(expires, valid_until.astimezone(UTC).replace(microsecond=0))
        window = None
        if self.window is not None:
            window = {"start": self.window[0], "end": self.window[1]}
        return {
            "schema_version": SCHEMA_VERSION,
            "intent_id": self.intent_id,
            "issued_at": format_instant(issued),
            "expires_at": format_instant(expires),
            "target": self.target,
            "power": {
                "desired_state": self.desired_state,
                "reason": self.reason,
                "grace_seconds": self.grace_seconds,
            },
            "event_window": window,
        }


def intents_from(current: pd.DataFrame, *, groups: bool = False) -> dict[str, Intent]:
    """Each client's intent from :meth:`tvpower.engine.Timeline.at` rows.

    With ``groups``, rows of :meth:`~tvpower.engine.Timeline.groups_at`
    give each group's intent for its group topic, which names no client.
    """
    ids = [str(i) for i in current.index]
    columns = zip(
        ids,
        _objects(current["group_id"]),
        _objects(current["desired_state"]),
        _objects(current["reason"]),
        current["grace_seconds"].to_numpy().tolist(),
        current["start_known"].to_numpy().tolist(),
        _format_ns(current["start"].to_numpy()),
        _format_ns(current["window_start"].to_numpy()),
        _format_ns(current["window_end"].to_numpy()),
        strict=True,
    )
    intents = {}
    for name, group, state, reason, grace, known, start, w_start, w_end in columns:
        intents[name] = Intent(
            client_id=None if groups else name,
            group_id=group if isinstance(group, str) else None,
            desired_state=state,
            reason=reason,
            grace_seconds=int(grace),
            window=(w_start, w_end) if state == "on" else None,
            segment_start=start if known else None,
        )
    return intents


def _objects(column: pd.Series) -> list[Any]:
    """A column as plain Python objects: iterating pandas' own is far slower."""
    return column.to_numpy(dtype=object).tolist()


def format_instant(instant: datetime) -> str:
    """UTC, ISO 8601, whole seconds, with ``Z``."""
    return _format_second(int(instant.timestamp() // 1))


@lru_cache(maxsize=1024)
def _format_second(seconds: int) -> str:
    # One publish pass stamps thousands of payloads with the same second.
    return datetime.fromtimestamp(seconds, UTC).strftime(_UTC_FORMAT)


def encode(payload: dict[str, Any]) -> bytes:
    """The bytes on the wire: compact JSON in the payload's own key order."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@cache
def intent_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the v1 payload, shipped in the package."""
    text = resources.files("tvpower") / "schema" / "intent-v1.schema.json"
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = intent_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_payload(payload: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` is a valid v1 intent."""
    _validator().validate(payload)


@cache
def _fast_validator() -> Any:
    return jsonschema_rs.validator_for(intent_schema())


def schema_problem(payload: Any) -> str:
    """What makes ``payload`` an invalid v1 intent, or "" if it is valid.

    The same schema as :func:`validate_payload`, checked by jsonschema-rs,
    a few hundred times faster: for checking every message of a simulation.
    """
    validator = _fast_validator()
    if validator.is_valid(payload):
        return ""
    return str(next(iter(validator.iter_errors(payload))).message)


def _format_ns(values: np.ndarray[Any, Any]) -> list[str]:
    """Instants in ns as :func:`format_instant` writes them, each second once."""
    seconds, where = np.unique(values.astype(np.int64) // _NS, return_inverse=True)
    texts = [_format_second(s) for s in seconds.tolist()]
    return [texts[i] for i in where.tolist()]
