"""Signed frames: the camera signs every MJPEG part and snapshot, the engine and collector check them.

Without this, whoever can answer the engine's camera URL (a rogue server, a spoofed address, a man in
the middle) decides which faces the engine sees. Each signed frame carries four headers::

    X-Timestamp: 1712345678.250000        capture time, unix seconds (the exact text is signed)
    X-Sequence: 42                        1, 2, 3, ... per camera process, strictly increasing
    X-Stream-Id: 3q2x...                  random per camera process, so a restart starts a new sequence
    X-Frame-Signature: <64 hex digits>    HMAC-SHA256 of "smartlock-frame-v1", the stream id, the
                                          sequence, the timestamp text and the JPEG's SHA-256, one per line

The HMAC key is derived from the camera's secret (HMAC-SHA256 of the secret over a fixed label). People
watch with a *viewing token* derived from the same secret under another label (``viewing_token``): it
opens the stream, but cannot sign frames, so a shared viewing link cannot be turned into a forged stream.
A reader holding the secret drops every frame that is unsigned, wrongly signed, stale (more than
``max_age`` seconds from its own clock, either way: camera and engine need synchronised clocks) or
replayed (a sequence not above the last one it accepted on that stream).

A reader must not hand the token itself to whatever answers its camera URL: a rogue server would then
hold the signing secret. So readers (engine, collector, a relaying camera) open the stream with a proof
instead, ``Authorization: Smartlock-Proof t=<unix seconds>,n=<nonce>,mac=<hex>``, an HMAC under another
key derived from the secret; the camera accepts it for ``PROOF_MAX_AGE`` seconds. Browsers and scripts
present the viewing token (Bearer, X-Token, ?token=), never the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from smartlock.camera.mjpeg import format_timestamp

logger = logging.getLogger(__name__)

VERSION = b"smartlock-frame-v1"
KEY_LABEL = b"smartlock camera frame signing key v1"
ACCESS_LABEL = b"smartlock camera access proof key v1"
VIEW_LABEL = b"smartlock camera viewing token v1"
PROOF_SCHEME = "Smartlock-Proof"
PROOF_MAX_AGE = 10.0  # seconds a proof opens the camera; a captured one only shows what its sniffer saw
MAX_AGE = 2.0  # seconds between capture and arrival, either way, before a frame is stale
MAX_STREAMS = 16  # stream ids whose last sequence a verifier remembers

TIMESTAMP = "X-Timestamp"
SEQUENCE = "X-Sequence"
STREAM_ID = "X-Stream-Id"
SIGNATURE = "X-Frame-Signature"

# why a frame was dropped
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad-signature"
STALE = "stale"
REPLAYED = "replayed"
REASONS = (UNSIGNED, BAD_SIGNATURE, STALE, REPLAYED)

WHY = {
    UNSIGNED: "unsigned (not a smartlock camera holding this token: a rogue or misconfigured stream, or a "
    "camera started with --no-auth)",
    BAD_SIGNATURE: "wrongly signed (the camera holds another token, or the frames were altered on the way)",
    STALE: f"stale (captured more than {MAX_AGE:g} s from this machine's clock: replayed, or the clocks "
    "are not synchronised)",
    REPLAYED: "replayed (sequence numbers not increasing)",
}

_STREAM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEQUENCE = re.compile(r"[0-9]{1,19}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def derive_key(token: str, label: bytes = KEY_LABEL) -> bytes:
    """The frame-signing key (or, with ACCESS_LABEL, the access-proof key) for a camera token."""
    if not token:
        raise ValueError("an empty token cannot sign frames")
    return hmac.new(token.encode("utf-8"), label, hashlib.sha256).digest()


def viewing_token(secret: str) -> str:
    """The token people and browsers use to watch the camera (``?token=``, Bearer, X-Token), derived from
    the camera's secret. It opens the stream but cannot sign frames or make access proofs: whoever is
    only allowed to watch (a browser's history, a shared link) cannot forge a frame the engine accepts."""
    return hmac.new(secret.encode("utf-8"), VIEW_LABEL, hashlib.sha256).hexdigest()[:40]


def _proof_mac(key: bytes, stamp: str, nonce: str) -> str:
    message = b"\n".join([ACCESS_LABEL, stamp.encode(), nonce.encode()])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def access_proof(token: str, now: float | None = None) -> str:
    """An ``Authorization`` value that opens the camera holding ``token`` without revealing it."""
    stamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(12)
    mac = _proof_mac(derive_key(token, ACCESS_LABEL), stamp, nonce)
    return f"{PROOF_SCHEME} t={stamp},n={nonce},mac={mac}"


_PROOF = re.compile(r"t=([0-9]{1,12}),n=([A-Za-z0-9_-]{1,64}),mac=([0-9a-f]{64})")


def proof_matches(
    token: str, credentials: str, now: float | None = None, max_age: float = PROOF_MAX_AGE
) -> bool:
    """Whether ``credentials`` (what follows the scheme in ``Authorization``) prove ``token``, recently."""
    match = _PROOF.fullmatch(credentials.strip())
    if match is None:
        return False
    stamp, nonce, mac = match.groups()
    expected = _proof_mac(derive_key(token, ACCESS_LABEL), stamp, nonce)
    fresh = abs((time.time() if now is None else now) - int(stamp)) <= max_age
    return hmac.compare_digest(expected, mac) and fresh


def signature(key: bytes, stream_id: str, sequence: str, timestamp: str, jpeg: bytes) -> str:
    """The hex HMAC-SHA256 of one frame's signed fields (the header texts exactly as sent)."""
    digest = hashlib.sha256(jpeg).hexdigest()
    message = b"\n".join(
        [VERSION, stream_id.encode("ascii"), sequence.encode("ascii"), timestamp.encode("ascii"),
         digest.encode("ascii")]
    )
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class FrameSigner:
    """Signs a camera's frames: one random stream id per signer (one per camera process)."""

    def __init__(self, token: str, stream_id: str | None = None) -> None:
        self._key = derive_key(token)
        self.stream_id = stream_id or secrets.token_urlsafe(12)
        if not _STREAM_ID.fullmatch(self.stream_id):
            raise ValueError(f"a stream id is 1..64 of A-Z a-z 0-9 _ -, not {self.stream_id!r}")

    def headers(self, jpeg: bytes, timestamp: float, sequence: int) -> dict[str, str]:
        """The four headers for one frame (X-Timestamp included, formatted as the MJPEG part writes it)."""
        stamp, seq = format_timestamp(timestamp), str(sequence)
        return {
            TIMESTAMP: stamp,
            SEQUENCE: seq,
            STREAM_ID: self.stream_id,
            SIGNATURE: signature(self._key, self.stream_id, seq, stamp, jpeg),
        }


class FrameVerifier:
    """Checks signed frames for one reader; remembers the last sequence accepted on each stream.

    ``check`` returns None for a frame to hand on, else the reason to drop it (one of REASONS). Thread-safe;
    the state survives reconnects, so a reconnect cannot replay frames already seen.
    """

    def __init__(
        self, token: str, *, max_age: float = MAX_AGE, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = derive_key(token)
        self.max_age = max_age
        self._clock = clock
        self._last: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, headers: Mapping[str, str], jpeg: bytes) -> str | None:
        """None when ``jpeg`` is signed by the token, fresh and new on its stream; else why not.

        ``headers`` are the part's headers with lower-case names (as the MJPEG parser gives them)."""
        stamp = headers.get(TIMESTAMP.lower())
        seq = headers.get(SEQUENCE.lower())
        stream_id = headers.get(STREAM_ID.lower())
        mac = headers.get(SIGNATURE.lower())
        if not (stamp and seq and stream_id and mac):
            return UNSIGNED
        if not (
            _SEQUENCE.fullmatch(seq) and _STREAM_ID.fullmatch(stream_id) and _SIGNATURE.fullmatch(mac)
            and stamp.isascii()
        ):
            return BAD_SIGNATURE
        expected = signature(self._key, stream_id, seq, stamp, jpeg)
        if not hmac.compare_digest(expected, mac):
            return BAD_SIGNATURE
        try:
            captured = float(stamp)
        except ValueError:
            return BAD_SIGNATURE  # signed, but not by a camera of ours: ours write plain seconds
        if not abs(self._clock() - captured) <= self.max_age:  # also catches nan
            return STALE
        sequence = int(seq)
        with self._lock:
            last = self._last.get(stream_id)
            if last is not None and sequence <= last:
                return REPLAYED
            self._last[stream_id] = sequence
            self._last.move_to_end(stream_id)
            while len(self._last) > MAX_STREAMS:
                self._last.popitem(last=False)
        return None


class RejectedFrames:
    """Frames dropped by reason (``counts``), for a reader's stats; logged once per burst, not per frame.

    A burst starts with the first drop after an accepted frame and ends with the next accepted frame (an
    INFO with how many were dropped); within it each reason is a WARNING once, so an attacker mixing
    forgeries gets at most four lines per burst. Every drop is also a DEBUG line with the running counts,
    which tests wait on.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self._counts = dict.fromkeys(REASONS, 0)
        self._burst = 0
        self._burst_reasons: set[str] = set()
        self._lock = threading.Lock()

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def summary(self) -> str:
        counts = self.counts
        return ", ".join(f"{reason} {counts[reason]}" for reason in REASONS)

    def dropped(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1
            self._burst += 1
            first = reason not in self._burst_reasons
            self._burst_reasons.add(reason)
        if first:
            logger.warning("Dropping frames from %s: %s", self.where, WHY.get(reason, reason))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("Dropped frames: %s", self.summary())

    def accepted(self) -> None:
        with self._lock:
            burst, self._burst = self._burst, 0
            self._burst_reasons.clear()
        if burst:
            logger.info("Signed frames from %s again, after %d dropped", self.where, burst)


class FrameGate:
    """A verifier and its drop counts: ``admit`` says whether a frame may be handed on, counting it if not."""

    def __init__(self, token: str, where: str, **verifier: Any) -> None:
        self.verifier = FrameVerifier(token, **verifier)
        self.rejected = RejectedFrames(where)

    def admit(self, headers: Mapping[str, str], jpeg: bytes) -> bool:
        reason = self.verifier.check(headers, jpeg)
        if reason is None:
            self.rejected.accepted()
            return True
        self.rejected.dropped(reason)
        return False
