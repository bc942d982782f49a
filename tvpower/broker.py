"""The embedded MQTT broker: amqtt, started and stopped inside our event loop.

For development, demos and tests the publisher can bring its own broker
instead of needing a Mosquitto next to it. amqtt speaks MQTT 3.1.1 only, so
a publisher connected to it sends no Message Expiry Interval.

Known shortcoming of amqtt 0.12: a client's CONNECT walks the broker's
subscriptions while another client's departure may delete some, and the
connection then fails ("dictionary changed size during iteration"). A
fleet whose clients come and go by the dozen at one moment belongs on
Mosquitto; the simulated clients unsubscribe before they leave, which
avoids it.

::

    async with EmbeddedBroker(host="127.0.0.1", port=1883) as broker:
        ...  # publish to broker.url

If the requested port is taken, the broker moves to a free port, logs a
warning and says so in :attr:`EmbeddedBroker.moved_from`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from types import TracebackType
from typing import Any, Self

from amqtt.broker import Broker
from amqtt.errors import BrokerError as AmqttBrokerError

from tvpower.errors import BrokerError

__all__ = ["EmbeddedBroker"]

logger = logging.getLogger(__name__)

_BIND_ATTEMPTS = 5
_TEAR_DOWN_SECONDS = 1.0
_ANONYMOUS_AUTH = "amqtt.plugins.authentication.AnonymousAuthPlugin"


class EmbeddedBroker:
    """An amqtt broker listening on one TCP port, as an async context manager.

    Anonymous clients are allowed, retained messages live in memory only (and
    are gone when the broker stops), and no ``$SYS`` topics are published.

    ``port=0`` asks for any free port. After start, :attr:`host`,
    :attr:`port` and :attr:`url` say where the broker listens;
    :attr:`moved_from` is the requested port when it was taken and the broker
    moved elsewhere, otherwise ``None``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.moved_from: int | None = None
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        """The broker's address as an ``mqtt://host:port`` URL."""
        return f"mqtt://{_url_host(self.host)}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the requested port, or on a free one if it is taken."""
        if self._broker is not None:
            raise BrokerError(f"embedded broker already runs at {self.url}")
        port = self._requested_port
        if port != 0 and not _port_is_free(self.host, port):
            port = 0
        for _attempt in range(_BIND_ATTEMPTS):
            # Another process may take a probed free port before amqtt binds
            # it: probe again and retry, a few times.
            candidate = port or _free_port(self.host)
            if await self._try_start(candidate):
                self._record_port(candidate)
                return
            port = 0
        raise BrokerError(
            f"embedded broker found no free port on {self.host} "
            f"after {_BIND_ATTEMPTS} attempts"
        )

    async def stop(self) -> None:
        """Stop the broker, waiting at most ``shutdown_timeout`` seconds.

        amqtt's shutdown can hang while a client is mid-burst (a cancelled
        reader loop that never reports it stopped). When the wait runs out,
        the broker is torn down by force: its listener closed and its tasks
        cancelled, so that none are left pending on the event loop.
        """
        broker, self._broker = self._broker, None
        if broker is None:
            return
        try:
            await asyncio.wait_for(broker.shutdown(), self._shutdown_timeout)
        except TimeoutError:
            problem = f"did not shut down within {self._shutdown_timeout:g} s"
        except Exception as exc:  # amqtt's own errors: stopping goes on
            problem = f"failed to shut down: {exc}"
        else:
            return
        logger.warning(
            "embedded broker at %s %s; closing it by force", self.url, problem
        )
        await _tear_down(broker)

    async def _try_start(self, port: int) -> bool:
        """Start amqtt on ``port``; false if the port turned out to be taken."""
        broker = Broker(_broker_config(self.host, port))
        try:
            await broker.start()
        except AmqttBrokerError as exc:
            if _is_address_in_use(exc):
                return False
            raise BrokerError(
                f"embedded broker cannot listen on {self.host}:{port}: {exc}"
            ) from exc
        self._broker = broker
        return True

    def _record_port(self, port: int) -> None:
        requested = self._requested_port
        self.port = port
        if requested not in (0, port):
            self.moved_from = requested
            logger.warning(
                "port %d on %s is taken; embedded broker listens on port %d",
                requested,
                self.host,
                port,
            )
        logger.info("embedded broker listens at %s", self.url)


async def _tear_down(broker: Broker) -> None:
    """Close the listener, connections and tasks of this broker, bounded in time.

    amqtt has no public way to do this outside ``shutdown()``, so this uses
    its private parts: the listeners and the broadcast loop's own stop.
    """
    for server in broker._servers.values():
        server.instance.close()  # no new connections from here on
    # Stopped this way the broadcast loop exits quietly; cancelled, it logs
    # an ERROR with a traceback.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(broker._shutdown_broadcast_loop(), _TEAR_DOWN_SECONDS)
    connections = _client_connections(broker)
    for _round in range(2):
        # On Python 3.11 asyncio.wait_for can swallow a cancellation that
        # races with its inner read (amqtt's reader loop uses it), so a
        # second cancel is sent to any task that outlived the first.
        tasks = [task for task in asyncio.all_tasks() if _belongs_to(task, broker)]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_TEAR_DOWN_SECONDS)
    for connection in connections:
        # Cancelled, amqtt's handlers leave their sockets open.
        connection.transport.abort()
    for server in broker._servers.values():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_instance(), _TEAR_DOWN_SECONDS)


def _belongs_to(task: asyncio.Task[Any], broker: Broker) -> bool:
    """Whether ``task`` runs a method of ``broker`` or of one of its sessions.

    Other tasks, those of another embedded broker in this event loop
    included, are left alone.
    """
    owner = _frame_locals(task).get("self")
    if owner is None or task is asyncio.current_task():
        return False
    # Protocol handlers of the broker's sessions share its plugins manager.
    plugins = getattr(owner, "plugins_manager", None)
    return owner is broker or plugins is broker.plugins_manager


def _client_connections(broker: Broker) -> list[asyncio.StreamWriter]:
    """The client connections of ``broker``, from its connection tasks."""
    connections = []
    for task in asyncio.all_tasks():
        variables = _frame_locals(task)
        writer = variables.get("writer")
        if variables.get("self") is broker and isinstance(writer, asyncio.StreamWriter):
            connections.append(writer)
    return connections


def _frame_locals(task: asyncio.Task[Any]) -> dict[str, Any]:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return dict(frame.f_locals) if frame is not None else {}


def _broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt 0.12 configuration: one TCP listener, anonymous access only.

    Leaving out amqtt's ``BrokerSysPlugin`` turns ``$SYS`` off altogether
    (its ``sys_interval: 0`` still retains a version topic and warns), and
    leaving out a persistence plugin keeps retained messages in memory.
    """
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{_url_host(host)}:{port}"}},
        "plugins": {_ANONYMOUS_AUTH: {"allow_anonymous": True}},
    }


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_address_in_use(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE


def _port_is_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now, as amqtt would."""
    with _probe_socket(host) as probe:
        # asyncio.start_server sets SO_REUSEADDR; so does the probe, so that
        # sockets in TIME_WAIT do not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise BrokerError(
                f"embedded broker cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc
    return True


def _free_port(host: str) -> int:
    """A port the kernel reports free on ``host`` (bind to port 0)."""
    with _probe_socket(host) as probe:
        try:
            probe.bind((host, 0))
        except OSError as exc:
            raise BrokerError(
                f"embedded broker cannot listen on {host}: {exc.strerror}"
            ) from exc
        port: int = probe.getsockname()[1]
    return port


def _probe_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM)
