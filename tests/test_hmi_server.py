"""The operator station's server without a browser: headers, routes, bad input, a failing
handler, a stalled page's bounded queue, the vendored chart library, the `[hmi]` section."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from daemon.app.hmi.access import FREE_FAILURES, Throttle
from daemon.app.hmi.feed import RESYNC, Feed
from daemon.app.hmi.records_view import RunsQuery
from daemon.app.hmi.server import HmiServer, make_app
from daemon.app.hmi.users import User, UsersError, add_user, load_users
from daemon.config import ConfigError, HmiSettings, load_settings

VENDOR = Path(__file__).resolve().parents[1] / "daemon" / "app" / "hmi" / "static" / "vendor"
# uPlot 1.6.32 from the npm registry (`npm pack uplot@1.6.32`, dist/ and LICENSE as shipped;
# the tarball's sha1 c800a63b432bad692d6d746f44f0882aa73a49ae). A changed byte is a new
# version of somebody else's code in the operator's browser: update on purpose, here.
UPLOT_SHA256 = {
    "uplot/uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uplot/uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uplot/LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


class FakeStation:
    """A source with a run of three samples; ``broken`` makes the frame fail like a bug."""

    def __init__(self) -> None:
        self.broken = False
        self.asked: list[str | None] = []
        self.commands: list[tuple[str, dict[str, Any], str]] = []

    def frame(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("a bug in the frame")
        return {"state": "idle", "point": None}

    def context(self) -> dict[str, Any]:
        return {"liquidus_c": 217.0}

    def recipes(self) -> list[dict[str, Any]]:
        return [{"name": "sac305-polyimide", "version": 2}]

    async def command(self, command: str, args: dict[str, Any], user: User) -> dict[str, Any]:
        self.commands.append((command, args, user.name))
        return {"command_id": "x", "ok": True, "result": {}, "error": None}

    def recipe_versions(self, name: str) -> list[dict[str, Any]]:
        return [{"name": name, "version": v} for v in (1, 2)] if name == "sac" else []

    def recipe_text(self, name: str, version: int) -> str | None:
        texts = {1: 'name = "sac"\npeak = 240\n', 2: 'name = "sac"\npeak = 245\n'}
        return texts.get(version) if name == "sac" else None

    async def diagnostics(self) -> dict[str, Any]:
        return {"control_loop": {"late_p99_ms": 0.4}}

    async def runs(self, query: RunsQuery) -> list[dict[str, Any]]:
        self.asked.append(f"runs:{query.lot}:{query.result}:{query.limit}")
        return [{"run_id": "r1"}]

    async def report(self, run_id: str) -> str | None:
        return None if run_id == "nope" else "<html><style>p{}</style><p>report</p></html>"

    async def trace_csv(self, run_id: str) -> str | None:
        return None if run_id == "nope" else "t_s,step\n0.0,purge\n"

    async def history(self, run_id: str | None) -> dict[str, Any]:
        self.asked.append(run_id)
        if run_id == "nope":
            return {"run": None}
        return {"run": {"run_id": run_id or "r1"}, "trace": {"t_s": [0.0, 0.05, 0.1]}}


@asynccontextmanager
async def serving(station: FakeStation, **kw: Any) -> AsyncIterator[TestClient[Any, Any]]:
    # Not a fixture: the suite's leaked-task check must run after the server has closed.
    async with TestClient(TestServer(make_app(station, feed=Feed(), **kw))) as c:
        yield c


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> dict[str, User]:
    path = tmp_path_factory.mktemp("users") / "users.json"
    add_user(path, "ana", "operator", "ana-secret-1")
    add_user(path, "eve", "engineer", "eve-secret-2")
    add_user(path, "max", "maintenance", "max-secret-3")
    return load_users(path)


async def log_in(c: TestClient[Any, Any], name: str, password: str) -> dict[str, Any]:
    response = await c.post("/api/login", json={"name": name, "password": password})
    assert response.status == 200, await response.text()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    doc: dict[str, Any] = await response.json()
    return doc


async def test_every_answer_carries_a_strict_content_security_policy() -> None:
    station = FakeStation()
    async with serving(station) as c:
        for path in ("/", "/static/hmi.js", "/api/state", "/no/such/page"):
            response = await c.get(path)
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe" not in csp  # neither inline script nor eval
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "frame-ancestors 'none'" in csp


async def test_page_has_no_inline_script_and_loads_only_its_own_files() -> None:
    station = FakeStation()
    async with serving(station) as c:
        html = await (await c.get("/")).text()
        assert "<script>" not in html and "style=" not in html and "onclick" not in html
        assert "http://" not in html and "https://" not in html
        js = await c.get("/static/vendor/uplot/uPlot.iife.min.js")
        assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")


async def test_unknown_routes_and_files_are_404() -> None:
    station = FakeStation()
    async with serving(station) as c:
        assert (await c.get("/admin")).status == 404
        assert (await c.get("/static/../server.py")).status == 404
        assert (await c.get("/static/nothing.js")).status == 404
        assert (await c.post("/api/state")).status == 405


async def test_bad_query_is_refused_naming_the_field() -> None:
    station = FakeStation()
    async with serving(station) as c:
        response = await c.get("/api/run", params={"run_id": "x'; drop table runs"})
        assert response.status == 400
        body = await response.json()
        assert body["errors"][0]["field"] == "run_id"
        assert "required form" in body["errors"][0]["reason"]
        response = await c.get("/api/run", params={"limit": "5"})
        assert response.status == 400
        assert (await response.json())["errors"][0] == {"field": "limit", "reason": "unknown key"}
        assert station.asked == []  # nothing reached the records
        missing = await c.get("/api/run", params={"run_id": "nope"})
        assert missing.status == 404
        ok = await c.get("/api/run", params={"run_id": "r7"})
        assert (await ok.json())["run"]["run_id"] == "r7"


async def test_a_failing_handler_is_a_500_and_one_log_line() -> None:
    station = FakeStation()
    async with serving(station) as c:
        station.broken = True
        with capture_logs() as logs:
            response = await c.get("/api/state")
        assert response.status == 500
        assert "RuntimeError" not in await response.text()  # no traceback to the browser
        failed = [e for e in logs if e["event"] == "hmi_handler_failed"]
        assert len(failed) == 1 and failed[0]["path"] == "/api/state"
        station.broken = False
        assert (await c.get("/api/state")).status == 200  # and the server carries on


async def test_stream_sends_the_current_frame_then_published_ones() -> None:
    station, feed = FakeStation(), Feed()
    async with TestClient(TestServer(make_app(station, feed=feed))) as c:
        response = await c.get("/api/stream")
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert first.startswith(b"event: frame\ndata: {")
        for _ in range(50):
            if len(feed):
                break
            await asyncio.sleep(0.01)
        feed.publish(b'event: frame\ndata: {"n":1}\n\n')
        second = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert second == b'event: frame\ndata: {"n":1}\n\n'
        response.close()


def test_a_stalled_page_holds_at_most_depth_frames_then_resyncs() -> None:
    async def scenario() -> None:
        feed = Feed(depth=8)
        stalled = feed.subscribe()
        reader = feed.subscribe()
        got: list[bytes] = []
        for i in range(10_000):
            feed.publish(f"event: frame\ndata: {i}\n\n".encode())
            if i % 4 == 0:
                while not reader.queue.empty():
                    got.append(reader.queue.get_nowait())
        # The page that never reads costs at most `depth` frames, whatever was published.
        assert stalled.queue.qsize() <= 8
        assert stalled.resyncs > 1000 and stalled.dropped > 9000
        queued = [stalled.queue.get_nowait() for _ in range(stalled.queue.qsize())]
        assert RESYNC in queued
        # The page that keeps up lost nothing.
        assert len(got) + reader.queue.qsize() == 10_000 and reader.resyncs == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("name", sorted(UPLOT_SHA256))
def test_vendored_chart_library_is_the_pinned_release(name: str) -> None:
    data = (VENDOR / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == UPLOT_SHA256[name]
    if name.endswith("LICENSE"):
        assert data.startswith(b"The MIT License")


def test_hmi_section_defaults_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(tmp_path / "none.toml", required=False)
    assert settings.hmi.enabled and settings.hmi.anonymous_view
    assert (settings.hmi.host, settings.hmi.port) == ("127.0.0.1", 8080)
    monkeypatch.setenv("BONDERD_HMI__PORT", "8443")
    assert load_settings(tmp_path / "none.toml", required=False).hmi.port == 8443
    monkeypatch.setenv("BONDERD_HMI__PORT", "70000")
    with pytest.raises(ConfigError, match=r"BONDERD_HMI__PORT: hmi.port: must be ≤ 65535"):
        load_settings(tmp_path / "none.toml", required=False)
    monkeypatch.delenv("BONDERD_HMI__PORT")
    conf = tmp_path / "b.toml"
    conf.write_text('[hmi]\ntls_cert = "/etc/bonderd/hmi.pem"\n')
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings(conf, required=True)
    conf.write_text("[hmi]\nprot = 8080\n")
    with pytest.raises(ConfigError, match=r"hmi.prot: unknown key \(did you mean hmi.port\?\)"):
        load_settings(conf, required=True)


async def test_no_session_or_no_csrf_token_changes_nothing(users: dict[str, User]) -> None:
    station = FakeStation()
    async with serving(station, users=users) as c:
        anonymous = await c.post("/api/action/hold", json={})
        assert anonymous.status == 401
        doc = await log_in(c, "ana", "ana-secret-1")
        assert doc["user"] == "ana" and doc["role"] == "operator" and doc["csrf"]
        no_token = await c.post("/api/action/hold", json={})
        assert no_token.status == 403
        wrong = await c.post("/api/action/hold", json={}, headers={"X-CSRF-Token": "guess"})
        assert wrong.status == 403
        assert station.commands == []
        ok = await c.post("/api/action/hold", json={}, headers={"X-CSRF-Token": doc["csrf"]})
        assert ok.status == 200
        assert station.commands == [("hold", {}, "ana")]


async def test_roles_unknown_actions_and_bad_bodies_are_refused(users: dict[str, User]) -> None:
    station = FakeStation()
    async with serving(station, users=users) as c:
        csrf = {"X-CSRF-Token": (await log_in(c, "ana", "ana-secret-1"))["csrf"]}
        reset = await c.post("/api/action/reset", json={}, headers=csrf)
        assert reset.status == 403 and "engineer" in (await reset.json())["errors"][0]["reason"]
        assert (await c.post("/api/action/put_recipe", json={}, headers=csrf)).status == 403
        assert (await c.post("/api/action/take_over", json={}, headers=csrf)).status == 404
        form = await c.post("/api/action/hold", data="a=1", headers=csrf)
        assert form.status == 415  # only JSON, which a foreign form cannot send
        no_reason = await c.post("/api/action/abort", json={"reason": " "}, headers=csrf)
        assert no_reason.status == 400
        assert (await no_reason.json())["errors"][0]["field"] == "reason"
        assert station.commands == []
        logout = await c.post("/api/logout", json={}, headers=csrf)
        assert logout.status == 200
        assert (await c.post("/api/action/hold", json={}, headers=csrf)).status == 401
    async with serving(station, users=users) as c:
        csrf = {"X-CSRF-Token": (await log_in(c, "eve", "eve-secret-2"))["csrf"]}
        assert (await c.post("/api/action/reset", json={}, headers=csrf)).status == 200
    assert station.commands == [("reset", {}, "eve")]


async def test_failed_logins_are_throttled(users: dict[str, User]) -> None:
    clock = [1000.0]
    throttle = Throttle(now=lambda: clock[0])
    async with serving(FakeStation(), users=users, throttle=throttle) as c:
        for _ in range(FREE_FAILURES):
            bad = await c.post("/api/login", json={"name": "ana", "password": "nope-nope"})
            assert bad.status == 401
        # Now even the right password waits: the guesser cannot tell it was right.
        locked = await c.post("/api/login", json={"name": "ana", "password": "ana-secret-1"})
        assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
        clock[0] += 3.0
        await log_in(c, "ana", "ana-secret-1")
        unknown = await c.post("/api/login", json={"name": "mallory", "password": "x" * 9})
        assert unknown.status == 401
        extra = await c.post("/api/login", json={"name": "ana", "password": "x", "admin": 1})
        assert extra.status == 400


async def test_without_anonymous_view_only_a_session_sees_the_state(
    users: dict[str, User],
) -> None:
    async with serving(FakeStation(), users=users, anonymous_view=False) as c:
        assert (await c.get("/api/state")).status == 401
        assert (await c.get("/api/stream")).status == 401
        assert (await c.get("/")).status == 200  # the page, to log in from
        await log_in(c, "ana", "ana-secret-1")
        assert (await c.get("/api/state")).status == 200


def test_users_file_is_owner_only_and_refuses_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    assert add_user(path, "ana", "operator", "ana-secret-1") is True
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # somebody made it world-readable: a rewrite takes that back
    assert add_user(path, "ana", "engineer", "ana-secret-3") is False
    assert path.stat().st_mode & 0o777 == 0o640
    assert "ana-secret" not in path.read_text()
    assert load_users(path)["ana"].role == "engineer"
    with pytest.raises(UsersError, match="must be 8 to 1024 characters"):
        add_user(path, "bob", "operator", "short")
    with pytest.raises(UsersError, match="--role: must be one of operator, engineer, maintenance"):
        add_user(path, "bob", "admin", "long-enough")
    path.write_text('{"users": {"bob": {"role": "root", "password_hash": "$argon2id$x"}}}')
    with pytest.raises(UsersError, match=r"users.bob.role: must be one of"):
        load_users(path)


async def test_history_runs_report_and_csv() -> None:
    station = FakeStation()
    async with serving(station) as c:
        assert (await c.get("/history")).status == 200
        runs = await c.get("/api/runs", params={"lot": "L1", "result": "aborted", "limit": "5"})
        assert (await runs.json())["runs"] == [{"run_id": "r1"}]
        assert station.asked == ["runs:L1:aborted:5"]
        bad = await c.get("/api/runs", params={"result": "exploded"})
        assert bad.status == 400 and (await bad.json())["errors"][0]["field"] == "result"
        assert (await c.get("/api/runs", params={"limit": "0"})).status == 400
        report = await c.get("/runs/r1/report")
        assert report.status == 200 and "<p>report</p>" in await report.text()
        # The report's own policy: its inline style, no script at all, sandboxed.
        csp = report.headers["Content-Security-Policy"]
        assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
        csv = await c.get("/runs/r1/trace.csv")
        assert csv.headers["Content-Type"].startswith("text/csv")
        assert 'filename="r1.csv"' in csv.headers["Content-Disposition"]
        assert (await c.get("/runs/nope/report")).status == 404
        assert (await c.get("/runs/nope/trace.csv")).status == 404
        assert (await c.get("/runs/a%20b/report")).status == 404


async def test_recipe_versions_text_and_difference() -> None:
    async with serving(FakeStation()) as c:
        assert (await c.get("/recipes")).status == 200
        versions = await (await c.get("/api/recipes/sac/versions")).json()
        assert [v["version"] for v in versions["versions"]] == [1, 2]
        assert (await c.get("/api/recipes/nothing/versions")).status == 404
        assert (await c.get("/api/recipes/..%2Fetc/versions")).status == 404
        text = await (await c.get("/api/recipes/sac/2")).json()
        assert text["text"].endswith("peak = 245\n")
        assert (await c.get("/api/recipes/sac/7")).status == 404
        assert (await c.get("/api/recipes/sac/x")).status == 404
        diff = await (await c.get("/api/recipes/sac/diff", params={"a": "1", "b": "2"})).json()
        assert "-peak = 240" in diff["diff"] and "+peak = 245" in diff["diff"]
        bad = await c.get("/api/recipes/sac/diff", params={"a": "0", "b": "2"})
        assert bad.status == 400 and (await bad.json())["errors"][0]["field"] == "a"
        missing = await c.get("/api/recipes/sac/diff", params={"a": "1", "b": "9"})
        assert missing.status == 404 and "b=9" in (await missing.json())["errors"][0]["reason"]


async def test_diagnostics_are_for_maintenance(users: dict[str, User]) -> None:
    async with serving(FakeStation(), users=users) as c:
        assert (await c.get("/api/diagnostics")).status == 401
        await log_in(c, "eve", "eve-secret-2")
        assert (await c.get("/api/diagnostics")).status == 403  # an engineer is not enough
        await log_in(c, "max", "max-secret-3")
        doc = await (await c.get("/api/diagnostics")).json()
        assert doc["control_loop"]["late_p99_ms"] == 0.4


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="Debian package openssl not installed")
async def test_the_service_over_tls_streams_frames_and_stops_cleanly(
    tmp_path: Path, users: dict[str, User]
) -> None:
    assert OPENSSL is not None
    cert, key = tmp_path / "hmi.pem", tmp_path / "hmi.key"
    made = await asyncio.to_thread(
        subprocess.run,
        [
            *(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)),
            *("-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        capture_output=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    path = tmp_path / "users.json"
    add_user(path, "ana", "operator", "ana-secret-1")
    settings = HmiSettings(port=0, tls_cert=cert, tls_key=key, users_file=path)
    server = HmiServer(settings, FakeStation(), period_s=0.02)
    task = asyncio.create_task(server.run())
    try:
        for _ in range(200):
            if server.url:
                break
            await asyncio.sleep(0.02)
        assert server.url is not None and server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            login = await http.post(
                server.url + "api/login",
                json={"name": "ana", "password": "ana-secret-1"},
                ssl=trust,
            )
            assert login.status == 200
            assert "Secure" in login.headers["Set-Cookie"]  # never sent over plain HTTP
            async with http.get(server.url + "api/stream", ssl=trust) as stream:
                got = [
                    await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) for _ in range(4)
                ]
            assert all(m.startswith(b"event: frame\n") for m in got)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert server.url is None and server.frames >= 3


class BigFrames(FakeStation):
    def frame(self) -> dict[str, Any]:
        return {"state": "running", "pad": "x" * 100_000}  # 100 kB a frame: fills any socket


async def test_a_stalled_browser_costs_a_bounded_queue_not_growing_memory(
    tmp_path: Path,
) -> None:
    settings = HmiSettings(port=0, users_file=tmp_path / "none.json")
    server = HmiServer(settings, BigFrames(), period_s=0.01)
    task = asyncio.create_task(server.run())
    writer: asyncio.StreamWriter | None = None
    try:
        for _ in range(200):
            if server.url:
                break
            await asyncio.sleep(0.02)
        assert server.url is not None
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        # A browser that asks for the stream and then never reads a byte.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        for _ in range(300):  # 3 s: 300 frames, 30 MB offered to a socket nobody drains
            await asyncio.sleep(0.01)
        subs = list(server.feed._subscribers)
        assert len(subs) == 1
        sub = subs[0]
        assert sub.resyncs >= 1 and sub.dropped > 100
        assert sub.queue.qsize() <= server.feed.depth
        del reader
    finally:
        if writer is not None:
            writer.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_failing_frame_is_logged_and_the_service_keeps_serving(tmp_path: Path) -> None:
    station = FakeStation()
    server = HmiServer(
        HmiSettings(port=0, users_file=tmp_path / "none.json"), station, period_s=0.01
    )
    sub = server.feed.subscribe()  # somebody watching, so frames are built
    station.broken = True
    with capture_logs() as logs:
        task = asyncio.create_task(server.run())
        try:
            await asyncio.sleep(0.3)
            assert server.url is not None  # still listening
            station.broken = False
            message = await asyncio.wait_for(sub.next(), 2)
            assert message.startswith(b"event: frame")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    failed = [e for e in logs if e["event"] == "hmi_frame_failed"]
    assert len(failed) == 1  # logged once, not once per frame


async def test_a_taken_port_is_logged_and_the_station_comes_up_when_it_is_free(
    tmp_path: Path,
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    settings = HmiSettings(port=port, users_file=tmp_path / "none.json")
    server = HmiServer(settings, FakeStation(), period_s=0.05, bind_retry_s=0.05)
    with capture_logs() as logs:
        task = asyncio.create_task(server.run())
        try:
            await asyncio.sleep(0.5)  # ten attempts
            assert server.url is None
            blocker.close()
            for _ in range(100):
                if server.url:
                    break
                await asyncio.sleep(0.02)
            assert server.url == f"http://127.0.0.1:{port}/"
        finally:
            blocker.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    taken = [e for e in logs if e["event"] == "hmi_port_unavailable"]
    assert len(taken) == 1 and taken[0]["port"] == port  # once, not per attempt
