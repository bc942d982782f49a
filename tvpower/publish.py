"""``python -m tvpower.publish``: keep every client's power intent retained on a broker.

Without ``--broker`` it starts an embedded MQTT broker and prints the URL
subscribers should use. It runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from tvpower.broker import EmbeddedBroker
from tvpower.cli import configure_logging, parse_instant, run_cli
from tvpower.clock import Clock, ShiftedClock, SystemClock
from tvpower.errors import BrokerError, UsageError
from tvpower.mqtt import (
    BrokerAddress,
    MqttPublisher,
    default_client_id,
    parse_broker_url,
)
from tvpower.publisher import DEFAULT_TOPIC_PREFIX, Publisher
from tvpower.schedule import load_schedule

logger = logging.getLogger("tvpower.publish")

_RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tvpower.publish",
        description="Publish every client's power intent, retained, and keep it "
        "right as the schedule's events begin and end.",
    )
    parser.add_argument("--schedule", required=True, help="schedule file (YAML)")
    parser.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://HOST:PORT of an existing broker; without it an embedded "
        "broker is started",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="where the embedded broker listens; a taken port is replaced by a "
        "free one (default: %(default)s)",
    )
    parser.add_argument(
        "--now",
        metavar="INSTANT",
        help="start the clock at this instant instead of the wall clock "
        "(ISO 8601 with Z or an offset, or local time in the schedule's zone)",
    )
    parser.add_argument(
        "--client-id", help="MQTT client id (default: unique per process)"
    )
    parser.add_argument(
        "--topic-prefix", default=DEFAULT_TOPIC_PREFIX, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "pretty"],
        default="auto",
        help="pretty on a terminal, JSON lines otherwise (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format)
    return run_cli("tvpower.publish", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    schedule = load_schedule(args.schedule)
    clock: Clock = SystemClock()
    if args.now:
        clock = ShiftedClock(parse_instant(args.now, schedule.timezone, option="--now"))
    address = parse_broker_url(args.broker) if args.broker else None
    listen = _parse_listen(args.listen)
    publisher = Publisher(schedule, clock, topic_prefix=args.topic_prefix)
    client_id = args.client_id or default_client_id()
    asyncio.run(_serve(publisher, address, listen, client_id))
    return 0


async def _serve(
    publisher: Publisher,
    address: BrokerAddress | None,
    listen: tuple[str, int],
    client_id: str,
) -> None:
    stop = _stop_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        if address is None:
            broker = await stack.enter_async_context(EmbeddedBroker(*listen))
            _announce(broker, publisher.topic_prefix)
            address = parse_broker_url(broker.url)
        await _publish_until_stopped(publisher, address, client_id, stop)
    logger.info("stopped", extra={"fields": {"client_id": client_id}})


async def _publish_until_stopped(
    publisher: Publisher, address: BrokerAddress, client_id: str, stop: asyncio.Event
) -> None:
    """Connect, publish, and reconnect with backoff whenever the link drops."""
    failures = 0
    while not stop.is_set():
        try:
            async with MqttPublisher(address, client_id=client_id) as sink:
                failures = 0
                _log_connected(address, sink.protocol, client_id)
                publisher.forget_acknowledged()
                await publisher.run(sink, stop)
        except BrokerError as exc:
            failures += 1
            delay = _RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS)) - 1]
            fields = {"error": str(exc), "retry_in_seconds": delay}
            logger.warning("broker unavailable", extra={"fields": fields})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def _announce(broker: EmbeddedBroker, prefix: str) -> None:
    """Tell the operator where to subscribe: stdout, so scripts can read it."""
    if broker.moved_from is not None:
        print(
            f"port {broker.moved_from} is taken; the embedded broker listens on "
            f"port {broker.port} instead",
            file=sys.stderr,
        )
    print(f"embedded MQTT broker: {broker.url}", flush=True)
    print(
        f"watch the intents: mosquitto_sub -h {broker.host} -p {broker.port} -v "
        f"-t '{prefix}/+/power/intent'",
        flush=True,
    )


def _log_connected(address: BrokerAddress, protocol: str, client_id: str) -> None:
    fields = {
        "broker": f"{address.host}:{address.port}",
        "protocol": protocol,
        "client_id": client_id,
    }
    logger.info("connected", extra={"fields": fields})


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"--listen: expected HOST:PORT such as 127.0.0.1:1883, got {text!r}"
        )
    return host, int(port)


if __name__ == "__main__":
    sys.exit(main())
