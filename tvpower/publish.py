"""``python -m tvpower.publish``: keep every client's power intent retained on a broker.

Without ``--broker`` it starts an embedded MQTT broker and prints the URL
subscribers should use. It watches the schedule and its calendars, and runs
until SIGINT or SIGTERM. Every option can also come from an environment
variable (``TVPOWER_...``) or a TOML file (``--config``); flags win over the
environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, NoReturn, TextIO

import configargparse

from tvpower.broker import EmbeddedBroker
from tvpower.cli import configure_logging, parse_instant, run_cli
from tvpower.clock import Clock, ShiftedClock, SystemClock
from tvpower.errors import UsageError
from tvpower.intents import format_instant
from tvpower.metrics import Metrics
from tvpower.mqtt import (
    BrokerAddress,
    MqttPublisher,
    TlsOptions,
    default_client_id,
    parse_broker_url,
)
from tvpower.publisher import (
    DEFAULT_TOPIC_PREFIX,
    Publisher,
    PublisherOptions,
    Selection,
    cancel_task,
)
from tvpower.schedule import load_schedule
from tvpower.watch import watch_schedule

logger = logging.getLogger("tvpower.publish")

#: The table of the --config file that holds the options.
_TABLE = "tvpower"

#: The largest TCP port, and the longest keep-alive MQTT can send (two bytes).
_MAX_PORT = _MAX_KEEPALIVE = 65535


def build_parser() -> _Parser:
    config_file = _ConfigFile()
    parser = _Parser(
        prog="python -m tvpower.publish",
        description="Publish every client's power intent, retained, and keep it "
        "right as the schedule's events begin and end.",
        epilog="Precedence: flags, then TVPOWER_* environment variables, then the "
        "[tvpower] table of the --config TOML file (keys as the long flags without "
        'dashes in front, e.g. topic-prefix = "screens").',
        config_file_parser_class=config_file,
        config_file_open_func=_open_config,
        # Neither a flag nor a key of the file may stand for a longer option.
        allow_abbrev=False,
        # parse_args turns argparse's errors into one line each.
        exit_on_error=False,
    )
    _add_source_options(parser)
    _add_connection_options(parser)
    _add_rollout_options(parser)
    _add_output_options(parser)
    config_file.options = {
        option[2:]: action
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--config")
    }
    return parser


# configargparse has no type hints: its classes are Any to mypy (also below).
class _Parser(configargparse.ArgumentParser):  # type: ignore[misc]
    """A parser whose errors are :class:`UsageError`: one line, no usage block."""

    def parse_args(self, *args: Any, **kwargs: Any) -> argparse.Namespace:
        try:
            namespace: argparse.Namespace = super().parse_args(*args, **kwargs)
        except argparse.ArgumentError as exc:
            option = f"{exc.argument_name}: " if exc.argument_name else ""
            raise UsageError(f"{option}{exc.message}") from None
        return namespace

    def error(self, message: str) -> NoReturn:
        # configargparse catches what _open_config raises and words it anew;
        # ours already names the option, the file and the reason.
        raised = sys.exception()
        if isinstance(raised, UsageError):
            raise raised from None
        raise UsageError(message)


def _open_config(path: str) -> IO[str]:
    """Open the --config file (TOML is UTF-8), or say why it cannot be read."""
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"--config {path}: cannot read the file: {exc.strerror}"
        ) from None


class _IntRange:
    """An argparse type: an integer from ``low`` to ``high``.

    The check of the --config file runs it too, so a flag, a variable and a
    key of the file are held to the same range.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def __call__(self, text: str) -> int:
        expected = f"expected an integer from {self.low} to {self.high}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(f"{expected}, got {value}")
        return value


class _ConfigFile(configargparse.TomlConfigParser):  # type: ignore[misc]
    """The [tvpower] table of --config, each key checked against the options.

    configargparse would turn an unknown key into a flag that argparse then
    refuses, or takes for an option it abbreviates; here it is one line that
    names the file.
    """

    def __init__(self) -> None:
        super().__init__([_TABLE])
        self.options: dict[str, argparse.Action] = {}

    def parse(self, stream: TextIO) -> dict[str, str]:
        path = stream.name
        try:
            table = tomllib.loads(stream.read()).get(_TABLE)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not valid TOML: {exc}") from None
        if not isinstance(table, dict):
            raise UsageError(f"{path}: expected a [{_TABLE}] table of options")
        for key, value in table.items():
            self._check(path, key, value)
        # argparse converts the strings back, as it does flags.
        return {key: str(value) for key, value in table.items()}

    def _check(self, path: str, key: str, value: Any) -> None:
        action = self.options.get(key)
        if action is None:
            raise UsageError(
                f"{path}: unknown key {key!r} in [{_TABLE}]; see --help for the options"
            )
        kind, expected = _toml_type(action)
        if type(value) is not kind:
            raise UsageError(
                f"{path}: key {key!r} in [{_TABLE}]: expected {expected}, got {value!r}"
            )
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(repr(c) for c in action.choices)
            raise UsageError(
                f"{path}: key {key!r} in [{_TABLE}]: expected one of {choices}, "
                f"got {value!r}"
            )
        if not callable(action.type):
            return
        try:
            action.type(str(value))  # the range a flag is held to
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"{path}: key {key!r} in [{_TABLE}]: {exc}") from None


def _toml_type(action: argparse.Action) -> tuple[type, str]:
    """The TOML type a key of the file takes, and its name for messages."""
    if action.nargs == 0:
        return bool, "true or false"
    if isinstance(action.type, _IntRange):
        return int, "an integer"
    return str, "a string"


def _add_source_options(parser: configargparse.ArgumentParser) -> None:
    group = parser.add_argument_group("schedule and clock")
    group.add_argument(
        "--config", is_config_file=True, env_var="TVPOWER_CONFIG", help="TOML file"
    )
    group.add_argument(
        "--schedule", env_var="TVPOWER_SCHEDULE", help="schedule file (YAML), required"
    )
    group.add_argument(
        "--now",
        metavar="INSTANT",
        env_var="TVPOWER_NOW",
        help="start the clock at this instant instead of the wall clock "
        "(ISO 8601 with Z or an offset, or local time in the schedule's zone)",
    )


def _add_connection_options(parser: configargparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker")
    group.add_argument(
        "--broker",
        metavar="URL",
        env_var="TVPOWER_BROKER",
        help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT] of an existing broker; "
        "without it an embedded broker is started",
    )
    group.add_argument(
        "--listen",
        type=_parse_listen,
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        env_var="TVPOWER_LISTEN",
        help="where the embedded broker listens; a taken port is replaced by a "
        "free one (default: %(default)s)",
    )
    group.add_argument(
        "--client-id",
        env_var="TVPOWER_CLIENT_ID",
        help="MQTT client id (default: unique per process)",
    )
    group.add_argument("--username", env_var="TVPOWER_USERNAME")
    group.add_argument(
        "--password-file",
        type=Path,
        env_var="TVPOWER_PASSWORD_FILE",
        help="file holding the password (or set TVPOWER_PASSWORD); never logged",
    )
    group.add_argument(
        "--ca-file",
        type=Path,
        env_var="TVPOWER_CA_FILE",
        help="CA certificates to trust for mqtts://",
    )
    group.add_argument(
        "--cert-file",
        type=Path,
        env_var="TVPOWER_CERT_FILE",
        help="client certificate for mutual TLS",
    )
    group.add_argument(
        "--key-file",
        type=Path,
        env_var="TVPOWER_KEY_FILE",
        help="key of the client certificate",
    )
    group.add_argument(
        "--keepalive",
        type=_IntRange(0, _MAX_KEEPALIVE),
        default=60,
        env_var="TVPOWER_KEEPALIVE",
        help="MQTT keep-alive in seconds (default: %(default)s)",
    )
    group.add_argument(
        "--topic-prefix",
        default=DEFAULT_TOPIC_PREFIX,
        env_var="TVPOWER_TOPIC_PREFIX",
        help="first topic level (default: %(default)s)",
    )


def _add_rollout_options(parser: configargparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rollout")
    group.add_argument(
        "--only-groups",
        metavar="G1,G2",
        env_var="TVPOWER_ONLY_GROUPS",
        help="publish only for the clients of these groups",
    )
    group.add_argument(
        "--only-clients",
        metavar="C1,C2",
        env_var="TVPOWER_ONLY_CLIENTS",
        help="publish only for these clients (with --only-groups: both)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        env_var="TVPOWER_DRY_RUN",
        help="log every intent it would publish; connect to nothing",
    )
    group.add_argument(
        "--group-topics",
        action="store_true",
        env_var="TVPOWER_GROUP_TOPICS",
        help="also publish each group's intent to PREFIX/groups/GROUP/power/intent",
    )
    group.add_argument(
        "--expiry-policy",
        choices=["ttl", "window"],
        default="ttl",
        env_var="TVPOWER_EXPIRY_POLICY",
        help="ttl: intents expire ttl_seconds after issue; window: an on intent "
        "stays valid to its window's end plus grace (default: %(default)s)",
    )


def _add_output_options(parser: configargparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--metrics-port",
        type=_IntRange(1, _MAX_PORT),
        env_var="TVPOWER_METRICS_PORT",
        help="serve Prometheus metrics on this port",
    )
    group.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        env_var="TVPOWER_METRICS_HOST",
        help="address of the metrics endpoint (default: %(default)s)",
    )
    group.add_argument(
        "--log-format",
        choices=["auto", "json", "pretty"],
        default="auto",
        env_var="TVPOWER_LOG_FORMAT",
        help="pretty on a terminal, JSON lines otherwise (default: %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Until the event loop takes SIGTERM over, it stops start-up quietly.
    signal.signal(signal.SIGTERM, _stop_starting)
    return run_cli("tvpower.publish", lambda: _main(build_parser().parse_args(argv)))


def _main(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    _check_identity(args.topic_prefix, args.client_id)
    if not args.schedule:
        raise UsageError(
            "--schedule is required (or TVPOWER_SCHEDULE, or schedule in --config)"
        )
    metrics = Metrics()
    schedule = load_schedule(args.schedule)
    metrics.schedule_loads.labels(outcome="accepted").inc()
    selection = Selection(_names(args.only_groups), _names(args.only_clients))
    selection.check(schedule)
    options = PublisherOptions(
        topic_prefix=args.topic_prefix,
        selection=selection,
        group_topics=args.group_topics,
        expiry=args.expiry_policy,
        dry_run=args.dry_run,
    )
    clock: Clock = SystemClock()
    if args.now:
        clock = ShiftedClock(parse_instant(args.now, schedule.timezone, option="--now"))
    publisher = Publisher(schedule, clock, options=options, metrics=metrics)
    connection = _Connection.from_args(args)
    if args.metrics_port is not None:
        _serve_metrics(metrics, args.metrics_host, args.metrics_port)
    asyncio.run(_serve(publisher, connection, Path(args.schedule)))
    return 0


class _Connection:
    """How to reach the broker, from the options; the password stays here."""

    def __init__(
        self,
        address: BrokerAddress | None,
        listen: tuple[str, int],
        *,
        client_id: str,
        keepalive: int,
        username: str | None,
        password: str | None,
        tls: TlsOptions | None,
    ) -> None:
        self.address = address
        self.listen = listen
        self.client_id = client_id
        self.keepalive = keepalive
        self.username = username
        self._password = password
        self.tls = tls

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Connection:
        address = parse_broker_url(args.broker) if args.broker else None
        tls = None
        files = (args.ca_file, args.cert_file, args.key_file)
        if address is not None and (address.tls or any(files)):
            # Passed on mqtt:// too, so that the seam refuses TLS files there
            # instead of ignoring them.
            tls = TlsOptions(*files)
        return cls(
            address,
            args.listen,
            client_id=args.client_id or default_client_id(),
            keepalive=args.keepalive,
            username=args.username,
            password=_password(args.password_file),
            tls=tls,
        )

    def publisher(self, address: BrokerAddress) -> MqttPublisher:
        return MqttPublisher(
            address,
            client_id=self.client_id,
            keepalive=self.keepalive,
            username=self.username,
            password=self._password,
            tls=self.tls,
        )


async def _serve(publisher: Publisher, connection: _Connection, schedule: Path) -> None:
    stop = _stop_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        watcher = asyncio.create_task(watch_schedule(schedule, publisher, stop))
        stack.push_async_callback(cancel_task, watcher)
        if publisher.options.dry_run:
            await publisher.run(None, stop)
        else:
            await _serve_broker(publisher, connection, stop, stack)
    # "at" is on the publisher's clock, like issued_at: where the log ends.
    fields = {
        "client_id": connection.client_id,
        "at": format_instant(publisher.clock.now()),
    }
    logger.info("stopped", extra={"fields": fields})


async def _serve_broker(
    publisher: Publisher,
    connection: _Connection,
    stop: asyncio.Event,
    stack: contextlib.AsyncExitStack,
) -> None:
    """Publish to --broker, or to an embedded broker that ``stack`` stops."""
    address = connection.address
    if address is None:
        broker = EmbeddedBroker(*connection.listen)
        await stack.enter_async_context(broker)
        _announce(broker, publisher.topic_prefix)
        address = parse_broker_url(broker.url)
    await publisher.serve(
        lambda: connection.publisher(address),
        stop,
        broker=str(address),
        client_id=connection.client_id,
    )


def _stop_starting(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _announce(broker: EmbeddedBroker, prefix: str) -> None:
    """Tell the operator where to subscribe: stdout, so scripts can read it."""
    print(f"embedded MQTT broker: {broker.url}", flush=True)
    print(
        f"watch the intents: mosquitto_sub -h {broker.host} -p {broker.port} -v "
        f"-t '{prefix}/+/power/intent'",
        flush=True,
    )


def _serve_metrics(metrics: Metrics, host: str, port: int) -> None:
    try:
        metrics.serve(port, host)
    except OSError as exc:
        raise UsageError(
            f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    logger.info("metrics", extra={"fields": {"url": f"http://{host}:{port}/metrics"}})


def _check_identity(prefix: str, client_id: str | None) -> None:
    """Topic prefix and client id as MQTT allows them, before any connection."""
    levels = prefix.split("/")
    if not all(levels) or any(c in prefix for c in "+#\0") or len(prefix) > 200:
        raise UsageError(
            "--topic-prefix: expected topic levels without '+', '#' or NUL, "
            f"none empty, at most 200 characters, got {prefix[:80]!r}"
        )
    if client_id is not None and not 0 < len(client_id.encode()) <= 256:
        raise UsageError(
            f"--client-id: expected 1 to 256 bytes, got {len(client_id.encode())}"
        )


def _names(text: str | None) -> frozenset[str]:
    return frozenset(n.strip() for n in (text or "").split(",") if n.strip())


def _password(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get("TVPOWER_PASSWORD")
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise UsageError(
            f"--password-file: cannot read {path}: {exc.strerror}"
        ) from None


def _parse_listen(text: str) -> tuple[str, int]:
    """The argparse type of --listen; port 0 asks for a free one."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 address: [::1]:1883
    if not sep or not host or not port.isdecimal() or not 0 <= int(port) <= _MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT with a port from 0 to {_MAX_PORT}, such as "
            f"127.0.0.1:1883, got {text!r}"
        )
    return host, int(port)


if __name__ == "__main__":
    sys.exit(main())
