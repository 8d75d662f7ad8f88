"""What the routes share, kept on ``app.state.recognition``: the recognizer, metrics, limits, the key.

Handlers receive it through the ``State`` dependency, so the routers are module-level and ``create_app``
only assembles them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request, UploadFile
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException

from smartlock.recognition.metrics import ApiMetrics
from smartlock.recognition.middleware import UploadTooLarge
from smartlock.recognition.schemas import API_KEY_HEADER

if TYPE_CHECKING:
    from smartlock.recognition.recognizer import Recognizer

T = TypeVar("T")


@dataclass
class ApiState:
    """One app's collaborators. The anyio limiter and lock are made on first use, inside the event loop."""

    recognizer: Recognizer
    metrics: ApiMetrics
    max_upload_bytes: int
    inference_threads: int
    api_key: str | None = None
    model_hashes: dict[str, str] = field(default_factory=dict)
    _limiter: anyio.CapacityLimiter | None = field(default=None, repr=False)
    _write_lock: anyio.Lock | None = field(default=None, repr=False)

    async def in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args)

    async def inferring(self, func: Callable[..., T], *args: Any) -> T:
        """``func`` in a worker thread, at most ``inference_threads`` at once (more requests queue)."""
        self._limiter = self._limiter or anyio.CapacityLimiter(self.inference_threads)
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    async def changing(self, func: Callable[..., T], *args: Any) -> T:
        """Enrollments and removals one at a time: each is a read-modify-write of the saved gallery."""
        self._write_lock = self._write_lock or anyio.Lock()
        async with self._write_lock:
            return await self.in_thread(func, *args)

    async def read_upload(self, upload: UploadFile) -> bytes:
        """The file's bytes; 413 when it is over the per-image limit."""
        data = await upload.read(self.max_upload_bytes + 1)
        if len(data) > self.max_upload_bytes:
            raise UploadTooLarge(self.max_upload_bytes)
        return data


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.recognition
    return state


State = Annotated[ApiState, Depends(api_state)]

# Module level: FastAPI resolves the (string) annotations of dependencies in module globals.
API_KEY = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False,
    description="The key in the server's --api-key-file (default: MODEL_DIR/api-key, made on first start).",
)


async def require_key(state: State, key: Annotated[str | None, Depends(API_KEY)]) -> None:
    """401 unless the request carries the app's key (added to the guarded routers only when there is one,
    so that the schema claims no key when none is needed)."""
    if state.api_key is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), state.api_key.encode()):
        raise HTTPException(401, detail=f"missing or wrong {API_KEY_HEADER} header")
