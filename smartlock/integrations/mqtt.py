"""MqttLink: a paho-mqtt 2.x client on its own threads that never blocks its caller.

publish() only puts the message on a bounded queue (a full queue drops it and counts it); a sender
thread hands queued messages to paho once connected. paho's network thread (loop_start) connects and
reconnects with backoff (reconnect_delay_set); an outage is logged once, and the recovery once.
``on_connect`` callbacks run after every (re)connection, so retained discovery and state are published
again after the broker restarts. Messages on subscribed topics go to their handler (in paho's thread).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartlock.integrations.discovery import HA_STATUS_TOPIC, OFFLINE, ONLINE
from smartlock.integrations.settings import MqttSettings
from smartlock.service import read_secret

logger = logging.getLogger(__name__)

MAX_QUEUE = 1000
MAX_PAYLOAD = 256  # bytes: a command or switch payload longer than this is ignored
MAX_PACKET = 4096  # bytes: MQTT 5 Maximum Packet Size we ask for; the broker drops bigger packets for us
MAX_STATUS = 16  # bytes: a homeassistant/status payload longer than this is ignored
HA_ONLINE_EVERY = 10.0  # s: at most one re-announcement per this many seconds on homeassistant/status
OVERSIZE_LOG_EVERY = 60.0  # s: oversized payloads are counted, and logged at most this often
RECONNECT_MIN, RECONNECT_MAX = 1, 30
MQTT_ERR_QUEUE_SIZE = 15  # paho.mqtt.enums.MQTTErrorCode (paho is imported lazily)

Handler = Callable[[str, bytes, bool], None]  # topic, payload, retained


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int = 1


class MqttLink:
    """One connection to the broker for one part (``part``: "door" or "engine")."""

    def __init__(self, settings: MqttSettings, part: str, *, max_queue: int = MAX_QUEUE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from smartlock.integrations.discovery import Topics

        broker = settings.broker
        if broker is None:
            raise ValueError("no --mqtt-url")
        self.broker = broker
        self.part = part
        self.topics = Topics(settings.door_name)
        self.availability = self.topics.availability(part)
        self._password = (None if settings.mqtt_password_file is None
                          else read_secret(settings.mqtt_password_file, "MQTT password file"))
        self._ca_file = settings.mqtt_ca_file
        self._max_queue = max_queue
        self._queue: queue.Queue[Message | None] = queue.Queue(max_queue)
        self.clock = clock
        self._last_ha_online = float("-inf")
        self.oversized = 0  # payloads ignored for their size
        self._oversize_logged = float("-inf")
        self.ha_online_ignored = 0  # homeassistant/status "online" within HA_ONLINE_EVERY of the last one
        self.ha_online_announced = 0  # ... and the ones that re-announced
        self._handlers: dict[str, Handler] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker acknowledged our subscriptions
        self._stopping = threading.Event()
        self._outage = False
        self.dropped = 0
        self.last_error: str | None = None
        self._client: Any = None
        self._sender: threading.Thread | None = None

    # -- what the parts use ------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(topic, payload, retained)`` for each message on ``topic`` (before start())."""
        self._handlers[topic] = handler

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every (re)connection (in paho's thread; it should only publish)."""
        self._on_connect.append(callback)

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> bool:
        """Queue a message; never blocks. False (and counted in ``dropped``) when the queue is full."""
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            self._queue.put_nowait(Message(topic, data, retain))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("MQTT queue full: %d message(s) dropped so far", self.dropped)
            return False
        return True

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def ready(self) -> bool:
        """Connected, and the broker has acknowledged the subscriptions (commands reach us from now)."""
        return self._connected.is_set() and self._subscribed.is_set()

    def status(self) -> dict[str, Any]:
        """For the health line: connected or not, queued and dropped messages, the last error."""
        return {"broker": f"{self.broker.host}:{self.broker.port}", "connected": self.connected,
                "queued": self._queue.qsize(), "dropped": self.dropped, "error": self.last_error}

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> MqttLink:
        """Start connecting in the background (returns at once, broker up or not)."""
        import paho.mqtt.client as paho
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        # MQTT 5: subscriptions with retain-as-published, so a retained command is seen as retained even
        # when it is published while we are subscribed (3.1.1 clears the flag then)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                             client_id=f"smartlock-{self.topics.door}-{self.part}-{uuid.uuid4().hex[:8]}")
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self._password)
        if self.broker.tls:
            client.tls_set(ca_certs=str(self._ca_file) if self._ca_file else None)
        client.will_set(self.availability, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN, RECONNECT_MAX)
        client.max_queued_messages_set(self._max_queue)  # paho's own outgoing queue, unbounded by default
        client.on_connect = self._connected_cb
        client.on_disconnect = self._disconnected_cb
        client.on_connect_fail = self._connect_failed_cb
        client.on_message = self._message_cb
        client.on_subscribe = lambda *args: self._subscribed.set()
        self._client = client
        connect = Properties(PacketTypes.CONNECT)
        connect.MaximumPacketSize = MAX_PACKET  # the broker does not even send us bigger packets
        client.connect_async(self.broker.host, self.broker.port, keepalive=30, properties=connect)
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name=f"mqtt-{self.part}", daemon=True)
        self._sender.start()
        logger.info("MQTT: connecting to %s:%d%s as %s", self.broker.host, self.broker.port,
                    " (TLS)" if self.broker.tls else "", self.broker.username or "anonymous")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``offline``, disconnect and stop the threads (waits at most about ``timeout`` s)."""
        if self._client is None or self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._sender is not None:
            self._sender.join(timeout)
        client = self._client
        if self.connected:
            try:
                info = client.publish(self.availability, OFFLINE, qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as err:
                logger.debug("MQTT: offline not published: %s", err)
        client.disconnect()
        client.loop_stop()

    # -- paho's callbacks and the sender -----------------------------------------------------------

    def _connected_cb(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._failed(f"refused: {reason}")
            return
        from paho.mqtt.subscribeoptions import SubscribeOptions

        options = SubscribeOptions(qos=1, retainAsPublished=True)
        client.subscribe([(topic, options) for topic in [*self._handlers, HA_STATUS_TOPIC]])
        client.publish(self.availability, ONLINE, qos=1, retain=True)
        self._run_on_connect()
        self._connected.set()
        if self._outage:
            logger.warning("MQTT: connected to %s:%d again", self.broker.host, self.broker.port)
        else:
            logger.info("MQTT: connected to %s:%d", self.broker.host, self.broker.port)
        self._outage = False
        self.last_error = None

    def _run_on_connect(self) -> None:
        for callback in self._on_connect:
            try:
                callback()
            except Exception:
                logger.exception("MQTT: on-connect callback failed")

    def _disconnected_cb(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if not self._stopping.is_set():
            self._failed(f"disconnected: {reason}")

    def _connect_failed_cb(self, client: Any, userdata: Any) -> None:
        self._failed("cannot connect")

    def _failed(self, why: str) -> None:
        self.last_error = why
        if not self._outage:  # once per outage; paho retries with backoff
            self._outage = True
            logger.warning("MQTT: broker %s:%d unavailable (%s); retrying in the background, nothing waits "
                           "for it", self.broker.host, self.broker.port, why)

    def _message_cb(self, client: Any, userdata: Any, message: Any) -> None:
        topic = str(message.topic)
        size = len(message.payload)  # before any copy
        if topic == HA_STATUS_TOPIC:
            if size <= MAX_STATUS and bytes(message.payload).strip() == ONLINE.encode():
                self._ha_online()
            return
        handler = self._handlers.get(topic)
        if handler is None:
            logger.warning("MQTT: message on unexpected topic %r ignored", topic[:200])
            return
        if size > MAX_PAYLOAD:
            self._oversize(size, topic)
            return
        try:
            handler(topic, bytes(message.payload), bool(message.retain))
        except Exception:
            logger.exception("MQTT: handling a message on %s failed", topic)

    def _ha_online(self) -> None:
        now = self.clock()
        if now - self._last_ha_online < HA_ONLINE_EVERY:
            self.ha_online_ignored += 1
            logger.debug("MQTT: Home Assistant online again within %.0f s: not announced again",
                         HA_ONLINE_EVERY)
            return
        self._last_ha_online = now
        self.ha_online_announced += 1
        logger.info("MQTT: Home Assistant is online: discovery sent again")
        self._run_on_connect()

    def _oversize(self, size: int, topic: str) -> None:
        self.oversized += 1
        now = self.clock()
        if now - self._oversize_logged >= OVERSIZE_LOG_EVERY:
            self._oversize_logged = now
            logger.warning("MQTT: %d-byte payload on %s ignored (at most %d; %d ignored so far, logged at "
                           "most every %.0f s)", size, topic, MAX_PAYLOAD, self.oversized, OVERSIZE_LOG_EVERY)

    def _send_loop(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:  # stop(): everything queued before it has been handed over
                return
            while not self._connected.wait(0.5):
                if self._stopping.is_set():
                    return
            try:
                info = self._client.publish(message.topic, message.payload, qos=message.qos,
                                            retain=message.retain)
            except (RuntimeError, ValueError) as err:
                logger.warning("MQTT: %s not published: %s", message.topic, err)
                continue
            if info.rc == MQTT_ERR_QUEUE_SIZE:  # paho's own queue full (max_queued_messages_set)
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    logger.warning("MQTT: %s not published (%s): %d message(s) dropped so far",
                                   message.topic, info.rc, self.dropped)
