"""The MQTT adapter of CONTRACT.md: the only module that imports aiomqtt (ADR 0010).

The daemon side (:class:`MqttLink`) keeps one MQTT 5 connection to the line broker, forever:
it reconnects with capped exponential backoff and jitter, restores its subscriptions, and on
every connection publishes ``online`` (retained; ``offline`` is the Last Will), the current
retained ``state``, then every event still in the outbox, in ``seq`` order. An event is
marked delivered only after the broker's PUBACK, so a broken connection loses nothing.

The client side (:class:`CommandClient`) is what ``bonderctl`` and the tests use: it sends a
command with a response topic and correlation data and waits for the matching reply.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.config import MqttSettings
from daemon.mes.outbox import Outbox, json_text

log = structlog.get_logger(__name__)

# "station": the operator station at the machine (daemon/app/hmi), never over MQTT.
Origin = Literal["remote", "local", "station"]
# handler(payload bytes, origin) -> reply document
CommandHandler = Callable[[bytes, Origin], Awaitable[dict[str, Any]]]

# Read-only commands that take seconds (the twin's prediction, ADR 0171): answered beside
# the command stream, so an `abort` or `hold` sent meanwhile is not queued behind them.
# At most SIDE_COMMANDS_MAX at once; more wait in line (their payloads are up to 1 MiB).
SIDE_COMMANDS: Final = frozenset({"predict"})
SIDE_COMMANDS_MAX: Final = 4

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
PUBLISH_TIMEOUT_S = 10.0
KEEPALIVE_S = 15
MAX_COMMAND_BYTES = 1024 * 1024  # a recipe inline is ≤ 64 KiB by default; this is generous


def base_topic(equipment_id: str) -> str:
    return f"bonder/{equipment_id}"


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def _dumps(doc: dict[str, Any]) -> bytes:
    # A reply may echo a command_id with a lone surrogate: spelt as a JSON escape, not raised.
    return json_text(doc).encode("utf-8")


def _tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    if settings.tls_ca is None and settings.tls_cert is None:
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.tls_ca) if settings.tls_ca is not None else None
    )
    if settings.tls_cert is not None and settings.tls_key is not None:
        ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return ctx


def tls_problems(settings: MqttSettings) -> list[str]:
    """The TLS files as the connection will load them: a CA or key that is not PEM, a key
    that does not fit its certificate. Empty when fine (or when no TLS is configured)."""
    try:
        _tls_context(settings)
    except FileNotFoundError:
        return []  # named by daemon.config.serve_path_problems
    except (ssl.SSLError, OSError, ValueError) as exc:
        keys = "mqtt.tls_ca" if settings.tls_cert is None else "mqtt.tls_ca/tls_cert/tls_key"
        files = ", ".join(
            str(p) for p in (settings.tls_ca, settings.tls_cert, settings.tls_key) if p is not None
        )
        return [f"{keys}: {files}: cannot be used for TLS: {exc}"]
    return []


def _client(
    settings: MqttSettings,
    identifier: str,
    *,
    will: aiomqtt.Will | None = None,
    clean_start: bool = True,
    session_expiry_s: int = 0,
) -> aiomqtt.Client:
    props = _properties(PacketTypes.CONNECT)
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password is not None else None,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        will=will,
        keepalive=KEEPALIVE_S,
        clean_start=clean_start,
        properties=props if session_expiry_s else None,
        tls_context=_tls_context(settings),
        timeout=PUBLISH_TIMEOUT_S,
        # Without it, Nagle's algorithm and the peer's delayed ACK hold every small packet
        # for ~40 ms: a command's reply took 90 ms on loopback instead of 1 ms.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


class MqttLink:
    """The daemon's connection: availability, state, events, telemetry, commands, replies."""

    def __init__(
        self,
        settings: MqttSettings,
        equipment_id: str,
        outbox: Outbox,
        handler: CommandHandler,
        state: Callable[[], dict[str, Any]],
    ) -> None:
        self.settings = settings
        self.base = base_topic(equipment_id)
        self.identifier = settings.client_id or f"bonderd-{equipment_id}"
        self._outbox = outbox
        self._handler = handler
        self._state = state
        self._client: aiomqtt.Client | None = None
        self._events_ready = asyncio.Event()
        # One drain at a time (the pump and shutdown): an event is never published twice.
        self._drain_lock = asyncio.Lock()
        self._state_changed = asyncio.Event()
        self._telemetry: dict[str, Any] | None = None
        self._telemetry_ready = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0
        self._stopping = False

    # ---- called by the rest of the daemon (never blocks) ------------------------------
    def events_pending(self) -> None:
        self._events_ready.set()

    def state_changed(self) -> None:
        self._state_changed.set()

    def telemetry(self, doc: dict[str, Any]) -> None:
        """QoS 0, not retained; only the newest is kept while a publish is under way."""
        self._telemetry = doc
        self._telemetry_ready.set()

    # ---- the connection loop -------------------------------------------------------------
    async def run(self) -> None:
        """Stay connected forever; cancel to stop (then call :meth:`shutdown`)."""
        delay = BACKOFF_FIRST_S
        while True:
            will = aiomqtt.Will(f"{self.base}/availability", b"offline", qos=1, retain=True)
            client = _client(self.settings, self.identifier, will=will)
            try:
                async with client:
                    self._client = client
                    self.connections += 1
                    delay = BACKOFF_FIRST_S
                    log.info("mqtt_connected", host=self.settings.host, port=self.settings.port)
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt_disconnected", error=str(exc), retry_in_s=round(delay, 2))
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(f"{self.base}/cmd", qos=1)
        await client.subscribe(f"{self.base}/cmd/local", qos=1)
        await client.publish(f"{self.base}/availability", b"online", qos=1, retain=True)
        self._state_changed.clear()
        await client.publish(f"{self.base}/state", _dumps(self._state()), qos=1, retain=True)
        self._events_ready.set()
        self.connected.set()
        log.info("mqtt_online", pending_events=self._outbox.pending_count())
        tasks = [
            asyncio.create_task(self._commands(client), name="mqtt-commands"),
            asyncio.create_task(self._pump_state(client), name="mqtt-state"),
            asyncio.create_task(self._pump_events(client), name="mqtt-events"),
            asyncio.create_task(self._pump_telemetry(client), name="mqtt-telemetry"),
        ]
        # Not a TaskGroup: the first failure (the connection broke) is re-raised as itself,
        # not wrapped in an ExceptionGroup, and the siblings are cancelled.
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    async def _pump_telemetry(self, client: aiomqtt.Client) -> None:
        while True:
            await self._telemetry_ready.wait()
            self._telemetry_ready.clear()
            doc, self._telemetry = self._telemetry, None
            if doc is not None:
                await client.publish(f"{self.base}/telemetry", _dumps(doc), qos=0)

    async def _pump_state(self, client: aiomqtt.Client) -> None:
        while True:
            await self._state_changed.wait()
            self._state_changed.clear()
            await client.publish(f"{self.base}/state", _dumps(self._state()), qos=1, retain=True)

    async def _pump_events(self, client: aiomqtt.Client) -> None:
        while True:
            await self._events_ready.wait()
            self._events_ready.clear()
            await self._drain(client)

    async def _drain(self, client: aiomqtt.Client) -> int:
        sent = 0
        async with self._drain_lock:
            while batch := self._outbox.pending():
                for ev in batch:
                    # One at a time, each acknowledged before the next: order is the contract.
                    await client.publish(f"{self.base}/events", _dumps(ev.payload), qos=1)
                    self._outbox.mark_delivered(ev.seq)
                    sent += 1
        return sent

    async def _commands(self, client: aiomqtt.Client) -> None:
        side: set[asyncio.Task[None]] = set()
        try:
            await self._command_stream(client, side)
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)

    async def _answer(
        self, client: aiomqtt.Client, message: aiomqtt.Message, payload: bytes, origin: Origin
    ) -> None:
        reply = await self._handler(payload, origin)
        try:
            await self._reply(client, message, reply)
        except aiomqtt.MqttError as exc:  # the link broke meanwhile; the MES asks again
            log.warning("mqtt_side_reply_lost", error=str(exc))

    async def _command_stream(self, client: aiomqtt.Client, side: set[asyncio.Task[None]]) -> None:
        # Commands are answered one after another, in the order received, by one worker; the
        # reader stays free meanwhile, so an abort never waits behind a slow command (a
        # put_recipe or start the twin gate is predicting): it is answered beside it (ADR 0174).
        queue: asyncio.Queue[tuple[aiomqtt.Message, bytes, Origin]] = asyncio.Queue()
        handling = False

        async def in_order() -> None:
            nonlocal handling
            while True:
                message, payload, origin = await queue.get()
                handling = True
                try:
                    reply = await self._handler(payload, origin)
                    try:
                        await self._reply(client, message, reply)
                    except aiomqtt.MqttError as exc:  # the link broke; the MES asks again
                        log.warning("mqtt_reply_lost", error=str(exc))
                finally:
                    handling = False

        worker = asyncio.create_task(in_order(), name="mqtt-commands")
        try:
            await self._read_commands(client, side, queue, lambda: handling or not queue.empty())
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _read_commands(
        self,
        client: aiomqtt.Client,
        side: set[asyncio.Task[None]],
        queue: asyncio.Queue[tuple[aiomqtt.Message, bytes, Origin]],
        busy: Callable[[], bool],
    ) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            origin: Origin = "local" if topic.endswith("/cmd/local") else "remote"
            payload = message.payload if isinstance(message.payload, bytes) else b""
            problem = _response_topic_problem(self.base, message)
            if problem is not None:
                # Not executed: the sender would never see the reply where it waits. Answered
                # on …/reply (the contract's default) with its correlation data.
                log.warning("command_refused_response_topic", problem=problem)
                reply: dict[str, Any] = {
                    "command_id": _command_id_of(payload),
                    "ok": False,
                    "result": None,
                    "error": {"code": "invalid_response_topic", "message": problem},
                }
                await self._reply(client, message, reply, default_topic=True)
                continue
            if len(payload) > MAX_COMMAND_BYTES:
                reply = {
                    "command_id": None,
                    "ok": False,
                    "result": None,
                    "error": {
                        "code": "invalid_payload",
                        "message": f"payload of {len(payload)} bytes is larger than "
                        f"{MAX_COMMAND_BYTES}",
                    },
                }
            else:
                command = _command_of(payload)
                if (len(side) < SIDE_COMMANDS_MAX and command in SIDE_COMMANDS) or (
                    command == "abort" and busy()
                ):
                    task = asyncio.create_task(
                        self._answer(client, message, payload, origin), name="mqtt-side-command"
                    )
                    side.add(task)
                    task.add_done_callback(side.discard)
                else:
                    queue.put_nowait((message, payload, origin))
                continue
            await self._reply(client, message, reply)

    async def _reply(
        self,
        client: aiomqtt.Client,
        request: aiomqtt.Message,
        reply: dict[str, Any],
        *,
        default_topic: bool = False,
    ) -> None:
        props_in = request.properties
        response_topic = getattr(props_in, "ResponseTopic", None) if props_in else None
        correlation = getattr(props_in, "CorrelationData", None) if props_in else None
        props = None
        if correlation is not None:
            props = _properties(PacketTypes.PUBLISH)
            props.CorrelationData = correlation
        topic = f"{self.base}/reply"
        if not default_topic and isinstance(response_topic, str) and _valid_topic(response_topic):
            topic = response_topic
        await client.publish(topic, _dumps(reply), qos=1, properties=props)

    async def shutdown(self, timeout_s: float = 5.0) -> None:
        """Deliver what is pending, publish the final state and ``offline``, disconnect."""
        client = self._client
        if client is None or not self.connected.is_set():
            log.warning("mqtt_shutdown_offline", pending_events=self._outbox.pending_count())
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._drain(client)
                await client.publish(
                    f"{self.base}/state", _dumps(self._state()), qos=1, retain=True
                )
                await client.publish(f"{self.base}/availability", b"offline", qos=1, retain=True)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("mqtt_shutdown_incomplete", error=str(exc))


def _valid_topic(topic: str) -> bool:
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < size <= 65535 and not any(c in topic for c in "#+\0")


def _response_topic_problem(base: str, request: aiomqtt.Message) -> str | None:
    """Why the request's MQTT 5 response topic is refused, or None (docs/mqtt.md "Replies").

    Under the equipments' base topics (``bonder/<id>/…``, this one's and any other's) the
    daemon publishes only its own documents; a reply there would pass for an event, the
    state, the availability of this machine or another. The one subtree a reply may go to is
    this equipment's per-client ``bonder/<id>/reply/<client id>`` of the example ACL (one
    level, no more). Elsewhere (the MES's own namespace) the broker's ACL decides.
    """
    props = request.properties
    topic = getattr(props, "ResponseTopic", None) if props else None
    if not isinstance(topic, str) or not _valid_topic(topic):
        return None  # none, or not one to publish to: the reply goes to …/reply as before
    family = base.split("/", 1)[0] + "/"
    if not topic.startswith(family):
        return None
    client = topic.removeprefix(f"{base}/reply/")
    if client != topic and client and "/" not in client:
        return None
    return (
        f"response topic {topic!r} is refused: under {family} a reply goes only to "
        f"{base}/reply/<client id>; the command was not executed"
    )


def _command_of(payload: bytes) -> Any:
    # Only the side path's commands are looked for: the common case is not parsed twice.
    if b"predict" not in payload and b"abort" not in payload:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return doc.get("command") if isinstance(doc, dict) else None


def _command_id_of(payload: bytes) -> Any:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    command_id = doc.get("command_id") if isinstance(doc, dict) else None
    return command_id if isinstance(command_id, str) and 0 < len(command_id) <= 128 else None


# ---- the client side: bonderctl and tests ----------------------------------------------


class CommandTimeout(Exception):
    """No reply came within the timeout."""


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class CommandClient:
    """A client of the daemon: commands with replies, and subscriptions to its topics."""

    def __init__(self, client: aiomqtt.Client, equipment_id: str) -> None:
        self._client = client
        self.base = base_topic(equipment_id)
        self.reply_topic = f"{self.base}/reply/{client.identifier}"
        self._waiting: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._subscribed: asyncio.Queue[Received] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        settings: MqttSettings,
        equipment_id: str,
        *,
        identifier: str | None = None,
        session_expiry_s: int = 0,
    ) -> AsyncIterator[CommandClient]:
        """Connect; with ``session_expiry_s`` the broker keeps the session (and queues QoS 1
        messages for it) across disconnections, as an MES subscriber would."""
        ident = identifier or f"bonderctl-{uuid.uuid4().hex[:12]}"
        async with _client(
            settings, ident, clean_start=not session_expiry_s, session_expiry_s=session_expiry_s
        ) as client:
            self = cls(client, equipment_id)
            await client.subscribe(self.reply_topic, qos=1)
            self._reader = asyncio.create_task(self._read(), name="bonderctl-reader")
            try:
                yield self
            finally:
                self._reader.cancel()
                await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for message in self._client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            corr = getattr(message.properties, "CorrelationData", None)
            if str(message.topic) == self.reply_topic and corr is not None:
                fut = self._waiting.pop(bytes(corr), None)
                if fut is not None and not fut.done():
                    try:
                        doc = json.loads(payload)
                    except ValueError:
                        doc = {"ok": False, "error": {"code": "bad_reply", "message": "not JSON"}}
                    fut.set_result(doc)
                continue
            self._subscribed.put_nowait(Received(str(message.topic), payload, message.retain))

    async def request_raw(
        self, payload: bytes, *, timeout_s: float = 10.0, local: bool = False
    ) -> dict[str, Any]:
        corr = uuid.uuid4().bytes
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[corr] = fut
        props = _properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = corr
        topic = f"{self.base}/cmd/local" if local else f"{self.base}/cmd"
        try:
            await self._client.publish(topic, payload, qos=1, properties=props)
            async with asyncio.timeout(timeout_s):
                return await fut
        except TimeoutError:
            raise CommandTimeout(f"no reply within {timeout_s:g} s") from None
        finally:
            self._waiting.pop(corr, None)

    async def request(
        self,
        command: str,
        args: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        timeout_s: float = 10.0,
        local: bool = False,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "command": command,
            "command_id": command_id or uuid.uuid4().hex,
            "args": args or {},
        }
        return await self.request_raw(_dumps(doc), timeout_s=timeout_s, local=local)

    async def subscribe(self, *suffixes: str) -> None:
        for suffix in suffixes:
            await self._client.subscribe(f"{self.base}/{suffix}", qos=1)

    async def received(self) -> Received:
        return await self._subscribed.get()


def is_mqtt_error(exc: BaseException) -> bool:
    return isinstance(exc, aiomqtt.MqttError)
