"""An MJPEG server that lies, for the frame-authentication tests: it serves one picture (an enrolled
person's photo) as unsigned, wrongly signed, stale or replayed frames, and counts what it sent.

The variants, as an attacker on the LAN could serve them at the engine's camera URL:

* ``unsigned``: plain MJPEG with fresh X-Timestamps, as any IP camera or ffmpeg would send.
* ``wrong-key``: signed correctly, but with the attacker's own token.
* ``stale``: frames the genuine camera really signed (with its token), recorded a minute ago.
* ``replayed``: first one genuine fresh frame of an empty wall with a high sequence number, then genuine
  signed frames of the person whose sequence numbers were already used on that stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from smartlock.camera.mjpeg import CONTENT_TYPE, build_part
from smartlock.camera.signing import FrameSigner

VARIANTS = ("unsigned", "wrong-key", "stale", "replayed")
RECORDED_AGO = 60.0  # seconds: how old the ``stale`` recording is
DECOY_SEQUENCE = 1_000_000


class RogueCamera:
    """The lying server's state: ``app`` to serve, ``sent`` frames of the picture so far (by variant).

    With several ``variants``, connection k serves variant k (cycling) for ``per_connection`` frames and
    then hangs up, so one reader that reconnects meets them all in turn.
    """

    def __init__(
        self, picture: bytes, variants: str | Sequence[str], *, camera_token: str, decoy: bytes | None = None,
        period: float = 0.04, per_connection: int | None = None,
    ) -> None:
        self.variants = (variants,) if isinstance(variants, str) else tuple(variants)
        if not self.variants or not set(self.variants) <= set(VARIANTS):
            raise ValueError(f"variants must be among {VARIANTS}, not {variants!r}")
        if "replayed" in self.variants and decoy is None:
            raise ValueError("the replayed variant needs a decoy frame")
        self.picture = picture
        self.period = period
        self.per_connection = per_connection
        self._genuine = FrameSigner(camera_token)  # what the real camera signed, recorded by the attacker
        self._own = FrameSigner("the attacker's own token")
        self._decoy = decoy
        self._lock = threading.Lock()
        self._sent = dict.fromkeys(self.variants, 0)
        self.connections = 0
        self.authorizations: list[str] = []  # what readers presented: a token here would be a token stolen
        self.app = self._make_app()

    @property
    def sent(self) -> int:
        """Frames of the picture sent so far, all variants together."""
        with self._lock:
            return sum(self._sent.values())

    def sent_as(self, variant: str) -> int:
        with self._lock:
            return self._sent[variant]

    def part(self, variant: str, index: int) -> bytes:
        """The ``index``-th part (1, 2, ...) of the picture in ``variant``."""
        now = time.time()
        if variant == "unsigned":
            return build_part(self.picture, now)
        if variant == "wrong-key":
            return build_part(self.picture, now, self._own.headers(self.picture, now, index))
        if variant == "stale":
            recorded = now - RECORDED_AGO
            return build_part(self.picture, recorded, self._genuine.headers(self.picture, recorded, index))
        sequence = 1 + (index - 1) % (DECOY_SEQUENCE - 1)  # replayed: numbers below the decoy's
        return build_part(self.picture, now, self._genuine.headers(self.picture, now, sequence))

    def decoy_part(self) -> bytes:
        assert self._decoy is not None
        now = time.time()
        return build_part(self._decoy, now, self._genuine.headers(self._decoy, now, DECOY_SEQUENCE))

    def _make_app(self) -> FastAPI:
        app = FastAPI()

        async def frames(variant: str) -> AsyncIterator[bytes]:
            if variant == "replayed":
                yield self.decoy_part()
            index = 0
            while self.per_connection is None or index < self.per_connection:
                index += 1
                part = self.part(variant, index)
                with self._lock:
                    self._sent[variant] += 1
                yield part
                await asyncio.sleep(self.period)

        @app.get("/stream.mjpg")
        async def stream(request: Request) -> StreamingResponse:
            # A rogue server lets anyone in, and keeps whatever credentials the reader presents.
            self.authorizations.append(request.headers.get("authorization", ""))
            variant = self.variants[self.connections % len(self.variants)]
            self.connections += 1
            return StreamingResponse(frames(variant), media_type=CONTENT_TYPE)

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        return app
