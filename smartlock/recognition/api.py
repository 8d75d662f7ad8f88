"""The Face Recognition API: the seed's POST /face-recognition, live enrollment, health and metrics."""

from __future__ import annotations

import hmac
import logging
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from smartlock import __version__
from smartlock.docs_ui import mount_api_docs
from smartlock.errors import (
    BadImageError,
    ConfigError,
    DependencyMissing,
    GalleryError,
    ModelError,
    NotEnrolled,
    SmartlockError,
)
from smartlock.recognition.metrics import ApiMetrics, MetricsMiddleware
from smartlock.recognition.middleware import (
    API_KEY_HEADER,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    UploadTooLarge,
    json_message,
)
from smartlock.recognition.recognizer import validate_name
from smartlock.recognition.schemas import (
    EnrolledImage,
    Enrollment,
    EnrollOutcome,
    Health,
    Message,
    People,
    Person,
    Recognition,
    error_responses,
)

if TYPE_CHECKING:
    from smartlock.recognition.recognizer import Recognizer

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
# Multipart framing (boundaries, part headers, small form fields) on top of the file bytes themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 2**10
T = TypeVar("T")


class _PersonPrefixConvertor(PathConvertor):
    """Like ``{x:path}`` (a name with '/' still reaches the handler, which refuses it with a 400 rather
    than the router answering 404), and also matches newlines, which ``.*`` would not."""

    regex = r"[\s\S]*"


class _PersonConvertor(_PersonPrefixConvertor):
    """The same, except a path shaped like an image route (".../images", ".../images/<id>"): a wrong
    method there gets 405 from those routes, not a 400 for the name "x/images" from /people/{name}."""

    regex = r"(?![\s\S]*/images(?:/[^/]*)?$)[\s\S]*"


register_url_convertor("person", _PersonConvertor())
register_url_convertor("person_prefix", _PersonPrefixConvertor())

# Module level, not inside create_app: FastAPI resolves these (string) annotations in module globals.
API_KEY = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="Needed when the server has --api-key-file."
)
PersonName = Annotated[
    str, Path(min_length=1, description="The person's name (no '/', '..' or control characters).")
]


def _person_name(name: PersonName) -> str:
    """Every route naming a person refuses a name that could never be enrolled with a 400 (GalleryError),
    whether it would add, read or remove: '/', '..' and control characters are input errors, not
    unknown people."""
    return validate_name(name)


ValidName = Annotated[str, Depends(_person_name)]


# ---------------------------------------------------------------------------------------------------
# Error conversion, once, at the edge.


def _status_for(err: SmartlockError) -> int:
    if isinstance(err, NotEnrolled):
        return 404
    if isinstance(err, BadImageError | GalleryError | ConfigError):
        return 400
    if isinstance(err, ModelError | DependencyMissing):
        return 503
    return 500


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method of the path template the router answered 405 for. Starlette names only the first
    route that matched, but GET and DELETE /people/{name} are two routes with one template."""
    routes = [route for route in app.router.routes if isinstance(route, APIRoute)]
    first = next((route for route in routes if route.matches(scope)[0] == Match.PARTIAL), None)
    if first is None:
        return []
    return sorted({method for route in routes if route.path == first.path for method in route.methods or ()})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SmartlockError)
    async def domain_error(request: Request, err: SmartlockError) -> JSONResponse:
        status = _status_for(err)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, err, exc_info=err)
        return json_message(status, str(err) or type(err).__name__)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        response = json_message(err.status_code, str(err.detail))
        response.headers.update(err.headers or {})
        if err.status_code == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods(app, request.scope))
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")),
             "type": str(error.get("type", ""))}
            for error in err.errors()
        ]
        summary = "; ".join(f"{'.'.join(d['loc'][1:] or d['loc'])}: {d['msg']}" for d in details)
        return json_message(422, summary or "invalid request", detail=details)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=err)
        return json_message(500, f"internal error ({type(err).__name__}); the server log has the details")


# ---------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-safe copy of the calibration dict: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _person(name: str, images: list[Any]) -> Person:
    return Person(
        name=name,
        image_count=len(images),
        images=[EnrolledImage(image_id=image.image_id, source=image.source) for image in images],
    )


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(limit)
    return data


def create_app(
    recognizer: Recognizer,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    *,
    inference_threads: int | None = None,
    metrics: ApiMetrics | None = None,
) -> FastAPI:
    """The recognition service around one loaded ``recognizer``.

    ``api_key``: when set, every endpoint but /health (and the docs) needs header X-API-Key.
    ``inference_threads``: recognitions running at once (default: CPU count); more queue up.
    """
    if api_key is not None and not (api_key and api_key.isascii() and api_key.isprintable()):
        raise ConfigError("the API key must be a non-empty string of printable ASCII characters")
    if api_key is not None and api_key != api_key.strip():
        raise ConfigError("the API key must not start or end with spaces (HTTP headers cannot carry them)")
    metrics = metrics or ApiMetrics()
    threads = inference_threads or os.cpu_count() or 1
    limiter: anyio.CapacityLimiter | None = None
    write_lock: anyio.Lock | None = None
    model_hashes = dict(recognizer.model_hashes())
    metrics.watch_people(lambda: len(recognizer.people()))

    async def in_thread(func: Callable[..., T], *args: Any, inference: bool = False) -> T:
        nonlocal limiter
        if inference:
            limiter = limiter or anyio.CapacityLimiter(threads)
            return await anyio.to_thread.run_sync(func, *args, limiter=limiter)
        return await anyio.to_thread.run_sync(func, *args)

    async def changing(func: Callable[..., T], *args: Any) -> T:
        # Enrollments and removals one at a time: each is a read-modify-write of the saved gallery.
        nonlocal write_lock
        write_lock = write_lock or anyio.Lock()
        async with write_lock:
            return await in_thread(func, *args)

    expected = api_key.encode() if api_key else None

    def recognize(data: bytes) -> list[Any]:
        with metrics.inference.time():  # inside the worker thread: queueing time is not counted
            return recognizer.recognize_bytes(data)

    async def require_key(key: Annotated[str | None, Depends(API_KEY)]) -> None:
        if expected is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), expected):
            raise HTTPException(401, detail=f"missing or wrong {API_KEY_HEADER} header")

    app = FastAPI(
        title="smartlock Face Recognition API",
        version=__version__,
        description=(
            "Recognise enrolled people in an image (`POST /face-recognition`, the seed's contract) and "
            "enroll or remove people while the service runs. Errors answer `{\"message\": ...}`."
        ),
        docs_url=None,  # mount_api_docs serves /docs and /redoc from local files (no CDN)
        redoc_url=None,
    )
    mount_api_docs(app)
    app.state.recognizer = recognizer
    app.state.metrics = metrics
    _install_error_handlers(app)
    # The last added is the outermost: metrics see every answer, the key is checked before the size.
    app.add_middleware(
        BodyLimitMiddleware, limit=max_upload_bytes + MULTIPART_OVERHEAD_BYTES, image_limit=max_upload_bytes
    )
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Without a key the schema must not claim one is needed (the fuzzer and clients read it).
    secured = [Depends(require_key)] if expected is not None else []

    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        return error_responses(*(code for code in codes if code != 401 or expected is not None))

    @app.post(
        "/face-recognition",
        response_model=Recognition,
        dependencies=secured,
        responses=errors(400, 401, 413, 422, 503),
        summary="Recognise the faces in an image",
    )
    async def face_recognition(
        image: Annotated[UploadFile, File(description="JPEG, PNG, WebP, BMP, TIFF or GIF")],
        include_predictions: Annotated[
            bool | None, Form(description="Also list every enrolled person's confidence per face.")
        ] = None,
        include_predictions_query: Annotated[
            bool | None, Query(alias="include_predictions", description="Same as the form field.")
        ] = None,
    ) -> dict[str, Any]:
        data = await _read_upload(image, max_upload_bytes)
        include = bool(include_predictions or include_predictions_query)
        faces = await in_thread(recognize, data, inference=True)
        metrics.faces.observe(len(faces))
        return {"faces": [face.to_api(include_predictions=include) for face in faces]}

    @app.get("/people", response_model=People, dependencies=secured, responses=errors(401))
    async def list_people() -> People:
        people = await in_thread(recognizer.people)
        return People(people=[_person(name, images) for name, images in people.items()])

    # The image routes are declared before the person routes, and `{name:person}` never matches a path
    # shaped like theirs ("alice/images/<id>"): see _PersonConvertor.
    @app.post(
        "/people/{name:person_prefix}/images",
        response_model=Enrollment,
        dependencies=secured,
        responses=errors(400, 401, 413, 422, 503),
        summary="Enroll photos of a person (new or existing)",
    )
    async def enroll(
        name: ValidName,
        images: Annotated[list[UploadFile], File(description="One or more photos, one face each.")],
        multiple_faces: Annotated[
            Literal["refuse", "largest"],
            Form(description="A photo with several faces: refuse it, or enroll the largest face."),
        ] = "refuse",
    ) -> Enrollment:
        files = [(upload.filename or f"image-{i}", await _read_upload(upload, max_upload_bytes))
                 for i, upload in enumerate(images, 1)]
        outcomes = await changing(recognizer.enroll, name, files, multiple_faces)
        answer = [
            EnrollOutcome(filename=o.filename, enrolled=o.enrolled, image_id=o.image_id, reason=o.reason)
            for o in outcomes
        ]
        added = sum(o.enrolled for o in answer)
        log.info("enrolled %d of %d photos of %r", added, len(answer), name)
        return Enrollment(name=name, enrolled=added, refused=len(answer) - added, outcomes=answer)

    @app.delete(
        "/people/{name:person_prefix}/images/{image_id}",
        response_model=Message,
        dependencies=secured,
        responses=errors(400, 401, 404, 422, 503),
        summary="Remove one photo of a person",
    )
    async def remove_image(name: ValidName, image_id: str) -> Message:
        await changing(recognizer.remove_image, name, image_id)
        log.info("removed image %s of %r", image_id, name)
        return Message(message=f"removed image {image_id} of {name}")

    @app.get(
        "/people/{name:person_prefix}/images/{image_id}",
        dependencies=secured,
        response_class=Response,
        responses={
            200: {"content": {"image/jpeg": {}}, "description": "JPEG face crop"},
            **errors(400, 401, 404, 422),
        },
        summary="The face crop kept when a photo was enrolled",
    )
    async def image_crop(name: ValidName, image_id: str) -> Response:
        crop = await in_thread(recognizer.image_crop, name, image_id)
        if crop is None:
            raise NotEnrolled(f"no face crop stored for image {image_id} of {name!r}")
        return Response(crop, media_type="image/jpeg")

    @app.get(
        "/people/{name:person}",
        response_model=Person,
        dependencies=secured,
        responses=errors(400, 401, 404, 422),
        summary="One person's photos",
    )
    async def get_person(name: ValidName) -> Person:
        people = await in_thread(recognizer.people)
        if name not in people:
            raise NotEnrolled(f"{name!r} is not enrolled")
        return _person(name, people[name])

    @app.delete(
        "/people/{name:person}",
        response_model=Message,
        dependencies=secured,
        responses=errors(400, 401, 404, 422, 503),
        summary="Remove a person and all their photos",
    )
    async def remove_person(name: ValidName) -> Message:
        await changing(recognizer.remove_person, name)
        log.info("removed %r", name)
        return Message(message=f"removed {name}")

    @app.get("/calibration", dependencies=secured, responses=errors(401), summary="Score calibration data")
    async def calibration() -> dict[str, Any]:
        return _plain(await in_thread(recognizer.calibration))

    @app.get("/health", response_model=Health, summary="Liveness, backend and gallery size (no key needed)")
    async def health() -> Health:
        people = await in_thread(recognizer.people)
        return Health(
            status="ok",
            version=__version__,
            backend=recognizer.backend_name,
            people=len(people),
            images=sum(len(images) for images in people.values()),
            model_hashes=model_hashes,
        )

    @app.get(
        "/metrics",
        dependencies=secured,
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            **errors(401),
        },
        summary="Prometheus metrics",
    )
    async def prometheus_metrics() -> Response:
        body, content_type = await in_thread(metrics.render)
        return Response(body, media_type=content_type)

    return app
