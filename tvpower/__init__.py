"""tvpower: schedules in, retained MQTT power intents for infoscreen TVs out.

The layers, each using only those before it: :mod:`tvpower.schedule` and
:mod:`tvpower.calendars` read schedules and calendars; :mod:`tvpower.engine`
turns them into each client's timeline; :mod:`tvpower.intents` makes the
v1 payloads; :mod:`tvpower.publisher` keeps them retained on a broker
through :mod:`tvpower.mqtt`; :mod:`tvpower.broker` is the embedded broker;
:mod:`tvpower.audit` rebuilds what was published from the log; and
:mod:`tvpower.sim` replays scenarios against all of it. The entry points
are ``python -m tvpower.publish``, ``python -m tvpower.timeline`` and
``python -m tvpower.sim``.
"""

from tvpower.audit import compare, read_publish_log, rebuild
from tvpower.broker import EmbeddedBroker
from tvpower.clock import ShiftedClock, SteppedClock, SystemClock
from tvpower.engine import Timeline, compute_timeline, timeline_around
from tvpower.errors import BrokerError, ScheduleError, TvpowerError, UsageError
from tvpower.intents import Intent, intent_schema, intents_from, validate_payload
from tvpower.metrics import Metrics
from tvpower.mqtt import MqttPublisher, TlsOptions, parse_broker_url
from tvpower.publisher import Publisher, PublisherOptions, Selection
from tvpower.schedule import Schedule, load_schedule

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "Intent",
    "Metrics",
    "MqttPublisher",
    "Publisher",
    "PublisherOptions",
    "Schedule",
    "ScheduleError",
    "Selection",
    "ShiftedClock",
    "SteppedClock",
    "SystemClock",
    "Timeline",
    "TlsOptions",
    "TvpowerError",
    "UsageError",
    "compare",
    "compute_timeline",
    "intent_schema",
    "intents_from",
    "load_schedule",
    "parse_broker_url",
    "read_publish_log",
    "rebuild",
    "timeline_around",
    "validate_payload",
]
