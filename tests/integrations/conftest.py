"""A real mosquitto broker on a free 127.0.0.1 port (started and stopped by the tests) and a recorder."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import LOOPBACK, free_port, stop_process, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """mosquitto on 127.0.0.1:port, anonymous, no persistence; kill() and start() on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} {LOOPBACK}\nallow_anonymous true\npersistence false\n")
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for(self._accepts, timeout=20, what="mosquitto listening")

    def _accepts(self) -> bool:
        import socket

        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
        with socket.socket() as sock:
            return sock.connect_ex((LOOPBACK, self.port)) == 0

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (scripts/test installs it: apt-get install mosquitto)")
    server = Mosquitto(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """A paho client subscribed to ``#`` that keeps every message; wait() for the one a test needs."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self.messages: list[Seen] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(LOOPBACK, port)
        self.client.loop_start()
        assert self._subscribed.wait(20), "recorder did not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Seen(message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[Seen]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait(self, topic: str, predicate=lambda seen: True, what: str = "") -> Seen:
        def found() -> Seen | None:
            return next((m for m in self.on(topic) if predicate(m)), None)

        return wait_for(found, timeout=20, what=what or f"a message on {topic}")

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    rec = Recorder(broker.port)
    yield rec
    rec.close()
