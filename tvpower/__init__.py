"""tvpower: schedules in, retained MQTT power intents for infoscreen TVs out.

The layers, each using only those before it: :mod:`tvpower.schedule` and
:mod:`tvpower.calendars` read schedules and calendars; :mod:`tvpower.engine`
turns them into each client's timeline; :mod:`tvpower.intents` makes the
v1 payloads; :mod:`tvpower.publisher` keeps them retained on a broker
through :mod:`tvpower.mqtt`; :mod:`tvpower.broker` is the embedded broker.
The entry points are ``python -m tvpower.publish`` and
``python -m tvpower.timeline``.
"""

from tvpower.engine import Timeline, compute_timeline, timeline_around
from tvpower.errors import BrokerError, ScheduleError, TvpowerError, UsageError
from tvpower.intents import Intent, intent_schema, intents_from, validate_payload
from tvpower.schedule import Schedule, load_schedule

__all__ = [
    "BrokerError",
    "Intent",
    "Schedule",
    "ScheduleError",
    "Timeline",
    "TvpowerError",
    "UsageError",
    "compute_timeline",
    "intent_schema",
    "intents_from",
    "load_schedule",
    "timeline_around",
    "validate_payload",
]
