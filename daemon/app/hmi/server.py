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
import difflib
import json
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.app.hmi.access import Session, Sessions, Throttle
from daemon.app.hmi.feed import Feed, sse
from daemon.app.hmi.records_view import RunsQuery
from daemon.app.hmi.users import PASSWORD_MAX, Role, User, UsersError, load_users, verify
from daemon.config import NAME_PATTERN, HmiSettings, describe_pydantic_error

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
COOKIE: Final = "bonderd_session"
FRAME_FAILURE_LOG_EVERY: Final = 600  # frames: five minutes at 2 Hz
BIND_RETRY_S: Final = 5.0  # while the station's address is taken
BIND_LOG_EVERY_S: Final = 60.0
CSRF_HEADER: Final = "X-CSRF-Token"
# What the station may ask of the controller, and the least role that may ask it.
ACTIONS: Final[dict[str, Role]] = {
    "take_control": "operator",
    "release_control": "operator",
    "start": "operator",
    "hold": "operator",
    "resume": "operator",
    "abort": "operator",
    "ack_alarm": "operator",
    "reset": "engineer",  # a latched trip: somebody who knows why it tripped
    "put_recipe": "engineer",  # a new recipe or version into the library
}
# Controller error codes that mean "your input is wrong" rather than "not now".
INPUT_ERRORS: Final = frozenset({"invalid_field", "missing_field", "invalid_payload"})
RUN_ID_PATTERN: Final = r"^[A-Za-z0-9_.:-]{1,80}$"
# The run report is one self-contained file with its own <style> and no script (ADR 0040):
# served under a policy of its own that allows its inline style and nothing else.
REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
)


class StationSource(Protocol):
    """What the server shows: the live frame, the recipe's chart lines, a run's history."""

    def frame(self) -> dict[str, Any]: ...

    def context(self) -> dict[str, Any]: ...

    def history(self, run_id: str | None) -> Awaitable[dict[str, Any]]: ...

    def recipes(self) -> list[dict[str, Any]]:
        """The library's recipes, newest version of each."""

    def recipe_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of the recipe ``name``, oldest first (empty: no such recipe)."""

    def recipe_text(self, name: str, version: int) -> str | None:
        """The stored text of one version (None: no such version)."""

    def diagnostics(self) -> Awaitable[dict[str, Any]]:
        """The machine's health for maintenance."""

    def runs(self, query: RunsQuery) -> Awaitable[list[dict[str, Any]]]:
        """The recorded runs matching ``query``, newest first."""

    def report(self, run_id: str) -> Awaitable[str | None]:
        """The run's report page (None: no such run)."""

    def trace_csv(self, run_id: str) -> Awaitable[str | None]:
        """The run's trace as CSV (None: no such run)."""

    def command(self, command: str, args: dict[str, Any], user: User) -> Awaitable[dict[str, Any]]:
        """The controller's reply to ``command`` from the station on behalf of ``user``."""


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX)]


class DiffQuery(BaseModel):
    """``GET /api/recipes/{name}/diff``: the two versions to compare."""

    model_config = ConfigDict(extra="forbid")
    a: Annotated[int, Field(ge=1)]
    b: Annotated[int, Field(ge=1)]


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
    users: dict[str, User]
    secure_cookie: bool
    sessions: Sessions
    throttle: Throttle
    # One password check at a time: each is tens of ms of CPU by design, and a flood of
    # logins must not take more than one core's worth away from the control loop's host.
    verifying: asyncio.Lock


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
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)  # a route's own policy (the report) stays
    response.headers.setdefault("Cache-Control", "no-store")


def _session(request: web.Request) -> Session | None:
    return request.app[SHARED].sessions.get(request.cookies.get(COOKIE))


def _require_view(request: web.Request) -> None:
    if not request.app[SHARED].anonymous_view and _session(request) is None:
        raise web.HTTPUnauthorized(text="401: log in to see the station (hmi.anonymous_view)")


def _problem(status: int, code: str, field: str, reason: str) -> web.Response:
    return web.json_response(
        {"error": code, "errors": [{"field": field, "reason": reason}]}, status=status
    )


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    # Only JSON: a form of another site cannot post it without the browser asking first.
    if request.content_type != "application/json":
        return _problem(415, "invalid_payload", "(body)", "must be application/json")
    try:
        doc = await request.json()
    except ValueError:
        return _problem(400, "malformed_json", "(body)", "not valid JSON")
    if not isinstance(doc, dict):
        return _problem(400, "invalid_payload", "(body)", "must be a JSON object")
    return doc


def _session_doc(session: Session | None) -> dict[str, Any]:
    if session is None:
        return {"user": None, "role": None, "csrf": None}
    return {"user": session.user.name, "role": session.user.role, "csrf": session.csrf}


async def _get_session(request: web.Request) -> web.Response:
    return web.json_response(_session_doc(_session(request)))


async def _login(request: web.Request) -> web.Response:
    shared = request.app[SHARED]
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        form = LoginForm.model_validate(body)
    except ValidationError as exc:
        return field_error(exc)
    keys = (f"name:{form.name}", f"addr:{request.remote}")
    wait = shared.throttle.wait_s(*keys)
    if wait > 0:
        log.warning("hmi_login_throttled", user=form.name, remote=request.remote)
        response = _problem(
            429, "throttled", "name", f"too many failed logins: try again in {wait:.0f} s"
        )
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    async with shared.verifying:
        user = await asyncio.to_thread(verify, shared.users, form.name, form.password)
    if user is None:
        shared.throttle.failed(*keys)
        log.warning("hmi_login_failed", user=form.name, remote=request.remote)
        return _problem(401, "login_failed", "password", "unknown name or wrong password")
    shared.throttle.succeeded(*keys)
    session = shared.sessions.open(user)
    log.info("hmi_login", user=user.name, role=user.role, remote=request.remote)
    response = web.json_response(_session_doc(session))
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        secure=shared.secure_cookie,
        path="/",
    )
    return response


def _checked_session(request: web.Request) -> Session | web.Response:
    """The session of a state-changing request, or the refusal: no session, or no CSRF
    token that matches it."""
    session = _session(request)
    if session is None:
        return _problem(401, "not_logged_in", "(session)", "log in first")
    if not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
        return _problem(403, "csrf", CSRF_HEADER, "missing or not this session's token")
    return session


async def _logout(request: web.Request) -> web.Response:
    session = _checked_session(request)
    if isinstance(session, web.Response):
        return session
    request.app[SHARED].sessions.close(session.token)
    log.info("hmi_logout", user=session.user.name)
    response = web.json_response(_session_doc(None))
    response.del_cookie(COOKIE, path="/")
    return response


async def _action(request: web.Request) -> web.Response:
    command = request.match_info["command"]
    need = ACTIONS.get(command)
    if need is None:
        raise web.HTTPNotFound()
    session = _checked_session(request)
    if isinstance(session, web.Response):
        return session
    user = session.user
    if not user.may(need):
        log.warning("hmi_action_refused", user=user.name, role=user.role, command=command)
        return _problem(403, "role", "(session)", f"{command} needs the {need} role or above")
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    reason = body.get("reason")
    if command == "abort" and not (isinstance(reason, str) and reason.strip()):
        # The station asks for a confirmation with a reason; the record keeps it.
        return _problem(400, "missing_field", "reason", "say why the run is aborted")
    reply = await request.app[SHARED].source.command(command, body, user)
    error = reply.get("error") or {}
    log.info(
        "hmi_action",
        user=user.name,
        role=user.role,
        command=command,
        ok=reply.get("ok"),
        error=error.get("code"),
    )
    status = 200 if reply.get("ok") else 400 if error.get("code") in INPUT_ERRORS else 409
    return web.json_response(reply, status=status)


async def _file(request: web.Request, name: str) -> web.Response:
    # The page and its files are public (the login form is on it); the machine's state is not.
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


async def _recipes(request: web.Request) -> web.Response:
    _require_view(request)
    return web.json_response({"recipes": request.app[SHARED].source.recipes()})


async def _diagnostics(request: web.Request) -> web.Response:
    session = _session(request)
    if session is None:
        return _problem(401, "not_logged_in", "(session)", "log in first")
    if not session.user.may("maintenance"):
        return _problem(403, "role", "(session)", "diagnostics need the maintenance role")
    return web.json_response(await request.app[SHARED].source.diagnostics())


async def _recipes_page(request: web.Request) -> web.Response:
    return await _file(request, "recipes.html")


def _recipe_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise web.HTTPNotFound()
    return name


async def _recipe_versions(request: web.Request) -> web.Response:
    _require_view(request)
    name = _recipe_name(request)
    versions = request.app[SHARED].source.recipe_versions(name)
    if not versions:
        raise web.HTTPNotFound(text=f"404: no recipe {name} in the library")
    return web.json_response({"name": name, "versions": versions})


async def _recipe_version(request: web.Request) -> web.Response:
    _require_view(request)
    name = _recipe_name(request)
    version = request.match_info["version"]
    text = (
        request.app[SHARED].source.recipe_text(name, int(version))
        if version.isdigit() and len(version) < 10
        else None
    )
    if text is None:
        raise web.HTTPNotFound(text=f"404: no version {version} of recipe {name}")
    return web.json_response({"name": name, "version": int(version), "text": text})


async def _recipe_diff(request: web.Request) -> web.Response:
    _require_view(request)
    name = _recipe_name(request)
    try:
        query = DiffQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return field_error(exc)
    source = request.app[SHARED].source
    a, b = source.recipe_text(name, query.a), source.recipe_text(name, query.b)
    missing = [f"{k}={v}" for k, v, t in (("a", query.a, a), ("b", query.b, b)) if t is None]
    if a is None or b is None:
        return _problem(404, "unknown_version", "a/b", f"no such version: {', '.join(missing)}")
    lines = list(
        difflib.unified_diff(
            a.splitlines(),
            b.splitlines(),
            f"{name} v{query.a}",
            f"{name} v{query.b}",
            lineterm="",
        )
    )
    return web.json_response({"name": name, "a": query.a, "b": query.b, "diff": lines})


async def _history_page(request: web.Request) -> web.Response:
    return await _file(request, "history.html")


async def _runs(request: web.Request) -> web.Response:
    _require_view(request)
    try:
        query = RunsQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        return field_error(exc)
    return web.json_response({"runs": await request.app[SHARED].source.runs(query)})


def _run_id(request: web.Request) -> str:
    run_id = request.match_info["run_id"]
    try:
        RunQuery(run_id=run_id)
    except ValidationError:
        raise web.HTTPNotFound() from None
    return run_id


async def _report(request: web.Request) -> web.Response:
    _require_view(request)
    run_id = _run_id(request)
    html = await request.app[SHARED].source.report(run_id)
    if html is None:
        raise web.HTTPNotFound(text=f"404: no run {run_id} in the records")
    return web.Response(
        text=html, content_type="text/html", headers={"Content-Security-Policy": REPORT_CSP}
    )


async def _csv(request: web.Request) -> web.Response:
    _require_view(request)
    run_id = _run_id(request)
    text = await request.app[SHARED].source.trace_csv(run_id)
    if text is None:
        raise web.HTTPNotFound(text=f"404: no run {run_id} in the records")
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.csv"'},
    )


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
    except Exception:
        # Headers are sent: the page sees the stream end (and reconnects); the log says why.
        log.exception("hmi_stream_failed", path=request.path)
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
    users: dict[str, User] | None = None,
    secure_cookie: bool = False,
    sessions: Sessions | None = None,
    throttle: Throttle | None = None,
) -> web.Application:
    app = web.Application(middlewares=[_contain_failures], client_max_size=512 * 1024)
    app[SHARED] = _Shared(
        source,
        feed,
        files if files is not None else _static_files(),
        anonymous_view,
        users or {},
        secure_cookie,
        sessions or Sessions(),
        throttle or Throttle(),
        asyncio.Lock(),
    )
    app.on_response_prepare.append(_headers)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name:.+}", _static)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/run", _run)
    app.router.add_get("/api/stream", _stream)
    app.router.add_get("/api/session", _get_session)
    app.router.add_get("/api/recipes", _recipes)
    app.router.add_get("/history", _history_page)
    app.router.add_get("/recipes", _recipes_page)
    app.router.add_get("/api/diagnostics", _diagnostics)
    app.router.add_get("/api/recipes/{name}/versions", _recipe_versions)
    app.router.add_get("/api/recipes/{name}/diff", _recipe_diff)
    app.router.add_get("/api/recipes/{name}/{version}", _recipe_version)
    app.router.add_get("/api/runs", _runs)
    app.router.add_get("/runs/{run_id}/report", _report)
    app.router.add_get("/runs/{run_id}/trace.csv", _csv)
    app.router.add_post("/api/login", _login)
    app.router.add_post("/api/logout", _logout)
    app.router.add_post("/api/action/{command}", _action)

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

    def __init__(
        self,
        settings: HmiSettings,
        source: StationSource,
        *,
        period_s: float,
        bind_retry_s: float = BIND_RETRY_S,
    ) -> None:
        self.settings = settings
        self.bind_retry_s = bind_retry_s
        self.source = source
        self.period_s = period_s
        self.feed = Feed()
        self.url: str | None = None
        self.frames = 0

    async def run(self) -> None:
        files = await asyncio.to_thread(_static_files)
        ssl_context = await asyncio.to_thread(tls_context, self.settings)
        try:
            users = await asyncio.to_thread(load_users, self.settings.users_file)
        except UsersError as exc:
            # The view still serves; nobody can log in until the file is fixed.
            log.error("hmi_users_unreadable", error=str(exc))
            users = {}
        log.info("hmi_users", count=len(users), file=str(self.settings.users_file))
        app = make_app(
            self.source,
            feed=self.feed,
            anonymous_view=self.settings.anonymous_view,
            files=files,
            users=users,
            secure_cookie=ssl_context is not None,
        )
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await self._listen(runner, ssl_context)
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

    async def _listen(self, runner: web.AppRunner, ssl_context: ssl.SSLContext | None) -> None:
        """Bind, waiting for the address while it is taken (another program, a previous
        daemon still closing): the MES side serves meanwhile, and the log says so once a
        minute rather than with a traceback a second."""
        attempt = 0
        while True:
            site = web.TCPSite(
                runner, self.settings.host, self.settings.port, ssl_context=ssl_context
            )
            try:
                await site.start()
                return
            except OSError as exc:
                if attempt % max(1, round(BIND_LOG_EVERY_S / self.bind_retry_s)) == 0:
                    log.error(
                        "hmi_port_unavailable",
                        host=self.settings.host,
                        port=self.settings.port,
                        error=exc.strerror or str(exc),
                        retry_s=self.bind_retry_s,
                    )
                attempt += 1
                await asyncio.sleep(self.bind_retry_s)

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        failures = 0
        while True:
            if len(self.feed):
                # Built and encoded once for every page; nobody watching, nothing built.
                try:
                    self.feed.publish(sse("frame", _encode(self.source.frame())))
                    self.frames += 1
                except Exception:
                    # A bug in one frame must not take the station down; logged the first
                    # time and every FRAME_FAILURE_LOG_EVERY-th after, not twice a second.
                    if failures % FRAME_FAILURE_LOG_EVERY == 0:
                        log.exception("hmi_frame_failed", failures=failures + 1)
                    failures += 1
            due = max(due + self.period_s, loop.time())
            await asyncio.sleep(due - loop.time())
