"""The operator station's web server: the one module that imports aiohttp (ADR 0150).

It runs in the daemon's event loop beside the control loop, so nothing here may block it:
the static files are read into memory once, before the server listens; a run's history is
read from the records and encoded in a worker thread; a live frame (a few hundred bytes of
JSON) is encoded once per telemetry period and the same bytes go to every page, each page
behind a bounded queue (``feed``). A request handler that fails answers 500 and logs one
line; nothing else happens to the daemon.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.app.hmi.feed import Feed, sse
from daemon.config import HmiSettings, describe_pydantic_error

log = structlog.get_logger(__name__)

# Everything the page loads comes from the daemon itself: no inline script or style, no
# other origin, no framing (clickjacking of the machine's buttons), no plugins.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
CLOSE: Final = b""  # the message that ends a stream (the server is stopping)
RUN_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,80}$"


class StationSource(Protocol):
    """What the server shows: the live frame, the recipe's chart lines, a run's history."""

    def frame(self) -> dict[str, Any]: ...

    def context(self) -> dict[str, Any]: ...

    def history(self, run_id: str | None) -> Awaitable[dict[str, Any]]: ...


class RunQuery(BaseModel):
    """``GET /api/run``'s query: the run to draw (none: the current or newest run)."""

    model_config = ConfigDict(extra="forbid")
    run_id: Annotated[str | None, Field(pattern=RUN_ID_PATTERN)] = None


def field_error(exc: ValidationError) -> web.Response:
    """400 naming each field and why, in the words the configuration and recipes use."""
    errors = [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(query)",
            "reason": describe_pydantic_error(e),
        }
        for e in exc.errors(include_url=False)
    ]
    return web.json_response({"error": "invalid_field", "errors": errors}, status=400)


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file under static/, by its path there, with its content type (read once)."""
    root = resources.files("daemon.app.hmi") / "static"
    files: dict[str, tuple[bytes, str]] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
                continue
            kind = CONTENT_TYPES.get(Path(child.name).suffix)
            if kind is not None:
                files[name] = (child.read_bytes(), kind)

    walk(root, "")
    return files


@dataclass
class _Shared:
    source: StationSource
    feed: Feed
    files: dict[str, tuple[bytes, str]]
    anonymous_view: bool


SHARED: Final = web.AppKey("shared", _Shared)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _contain_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # a 404, a 405: aiohttp's own answer
    except Exception:
        log.exception("hmi_handler_failed", method=request.method, path=request.path)
        return web.Response(status=500, text="500: internal error (the daemon logged it)")


async def _headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")


def _require_view(request: web.Request) -> None:
    if not request.app[SHARED].anonymous_view:
        # Logins are not part of this version of the station: with anonymous_view off,
        # nobody sees it, rather than everybody.
        raise web.HTTPForbidden(
            text="403: hmi.anonymous_view is false and this station has no logins yet"
        )


async def _file(request: web.Request, name: str) -> web.Response:
    _require_view(request)
    found = request.app[SHARED].files.get(name)
    if found is None:
        raise web.HTTPNotFound()
    body, kind = found
    return web.Response(body=body, headers={"Content-Type": kind})


async def _index(request: web.Request) -> web.Response:
    return await _file(request, "index.html")


async def _static(request: web.Request) -> web.Response:
    return await _file(request, request.match_info["name"])


async def _state(request: web.Request) -> web.Response:
    _require_view(request)
    shared = request.app[SHARED]
    return web.json_response({"frame": shared.source.frame(), "context": shared.source.context()})


async def _run(request: web.Request) -> web.Response:
    _require_view(request)
    try:
        query = RunQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return field_error(exc)
    doc = await request.app[SHARED].source.history(query.run_id)
    if query.run_id is not None and doc.get("run") is None:
        return web.json_response(
            {"error": "unknown_run", "errors": [{"field": "run_id", "reason": "no such run"}]},
            status=404,
        )
    # Thousands of points: encoded off the loop as well.
    body = await asyncio.to_thread(json.dumps, doc, separators=(",", ":"))
    return web.Response(text=body, content_type="application/json")


async def _stream(request: web.Request) -> web.StreamResponse:
    _require_view(request)
    shared = request.app[SHARED]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    sub = shared.feed.subscribe()
    try:
        await response.write(sse("frame", _encode(shared.source.frame())))
        while True:
            message = await sub.next()
            if message == CLOSE:
                break
            # Awaits only as long as the socket's buffer is full: meanwhile this page's
            # queue fills, and the feed drops and resyncs it rather than waiting.
            await response.write(message)
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        shared.feed.unsubscribe(sub)
    return response


def _encode(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def make_app(
    source: StationSource,
    *,
    feed: Feed,
    anonymous_view: bool = True,
    files: dict[str, tuple[bytes, str]] | None = None,
) -> web.Application:
    app = web.Application(middlewares=[_contain_failures], client_max_size=64 * 1024)
    app[SHARED] = _Shared(
        source, feed, files if files is not None else _static_files(), anonymous_view
    )
    app.on_response_prepare.append(_headers)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name:.+}", _static)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/run", _run)
    app.router.add_get("/api/stream", _stream)

    async def close_streams(_app: web.Application) -> None:
        feed.publish(CLOSE)

    app.on_shutdown.append(close_streams)
    return app


def tls_context(settings: HmiSettings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


class HmiServer:
    """The station as one of the daemon's services: listen, then publish a frame per period."""

    def __init__(self, settings: HmiSettings, source: StationSource, *, period_s: float) -> None:
        self.settings = settings
        self.source = source
        self.period_s = period_s
        self.feed = Feed()
        self.url: str | None = None
        self.frames = 0

    async def run(self) -> None:
        files = await asyncio.to_thread(_static_files)
        ssl_context = await asyncio.to_thread(tls_context, self.settings)
        app = make_app(
            self.source, feed=self.feed, anonymous_view=self.settings.anonymous_view, files=files
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.settings.host, self.settings.port, ssl_context=ssl_context
            )
            await site.start()
            host, port = runner.addresses[0][:2]
            scheme = "https" if ssl_context is not None else "http"
            shown = f"[{host}]" if ":" in host else host
            self.url = f"{scheme}://{shown}:{port}/"
            log.info("hmi_listening", url=self.url)
            print(f"bonderd: operator station at {self.url}", flush=True)
            await self._publish()
        finally:
            self.url = None
            await runner.cleanup()

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            if len(self.feed):
                # Built and encoded once for every page; nobody watching, nothing built.
                self.feed.publish(sse("frame", _encode(self.source.frame())))
                self.frames += 1
            due = max(due + self.period_s, loop.time())
            await asyncio.sleep(due - loop.time())
