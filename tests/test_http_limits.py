"""The HTTP source against a hostile local server: deadlines, body bounds, redirects, final 4xx, a damaged cache
(SPEC §2.2). Every server here is real, bound to 127.0.0.1, and runs in a thread of the test."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobs.__main__ import main
from pipeline import load_records
from pipeline.sources.horde import load_horde
from pipeline.sources.http import FetchError, HttpFetcher

#: How a test server answers one request: (handler, number of this request for its path, starting at 1).
Behaviour = Callable[[BaseHTTPRequestHandler, int], None]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up mid-request is what these tests do


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 whose answers a test scripts; it counts the requests per path."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.requests: list[str] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append(self.path)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up, as meant
                    behaviour(self, sum(1 for path in server.requests if path == self.path))

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], LocalServer]]:
    servers: list[LocalServer] = []

    def start(behaviour: Behaviour) -> LocalServer:
        servers.append(LocalServer(behaviour).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    named = {"Content-Length": str(len(body))} | {name.replace("_", "-"): value for name, value in headers.items()}
    for name, value in named.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def trickle(server: LocalServer) -> Behaviour:
    """A body promised as 1000 bytes and sent one byte every 0.2 s, until the client hangs up."""

    def behaviour(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if server.stopping.wait(0.2):
                return
            handler.wfile.write(b"[")
            handler.wfile.flush()

    return behaviour


# --- HORDE_API_TIMEOUT is a deadline for the whole response ---------------------------------------------


def test_a_trickling_body_is_cut_off_at_the_deadline_on_every_attempt(
    serve: Callable[[Behaviour], LocalServer],
) -> None:
    holder: list[LocalServer] = []
    server = serve(lambda handler, attempt: trickle(holder[0])(handler, attempt))
    holder.append(server)
    # each byte comes well within the read timeout: only a deadline for the whole response stops this
    with HttpFetcher(timeout=1.0, attempts=2, sleep=lambda _: None) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get_bytes(server.url("/v2/workers"))
    assert "failed after 2 attempt(s)" in str(caught.value)
    assert "timed out: no complete response within HORDE_API_TIMEOUT=1 s" in str(caught.value)
    assert server.requests == ["/v2/workers", "/v2/workers"]  # retried, each attempt bounded


def test_trickled_headers_are_cut_off_at_the_deadline(serve: Callable[[Behaviour], LocalServer]) -> None:
    def slow_headers(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if stop.wait(0.2):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    stop = threading.Event()
    server = serve(slow_headers)
    try:
        with HttpFetcher(timeout=1.0, attempts=1) as fetcher, pytest.raises(FetchError, match="timed out"):
            fetcher.get_bytes(server.url("/slow"))
    finally:
        stop.set()


def test_trickled_headers_on_a_reused_connection_are_cut_off_too(serve: Callable[[Behaviour], LocalServer]) -> None:
    stop = threading.Event()

    def fast_then_slow(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        if handler.path == "/fast":  # keep-alive: the next request comes on this connection
            send(handler, 200, b"[]")
            return
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if stop.wait(0.2):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    server = serve(fast_then_slow)
    try:
        with HttpFetcher(timeout=1.0, attempts=1) as fetcher:
            assert fetcher.get_bytes(server.url("/fast")) == b"[]"
            with pytest.raises(FetchError, match="timed out"):
                fetcher.get_bytes(server.url("/slow"))
    finally:
        stop.set()


def test_a_run_against_a_trickling_horde_fails_and_keeps_the_previous_run(
    serve: Callable[[Behaviour], LocalServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert main(["run"]) == 0
    holder: list[LocalServer] = []
    server = serve(lambda handler, attempt: trickle(holder[0])(handler, attempt))
    holder.append(server)
    monkeypatch.setenv("HORDE_API_TIMEOUT", "0.5")
    monkeypatch.setenv("HORDE_API_RETRIES", "2")
    assert main(["run", "--horde", server.url("/api")]) == 1
    assert "HORDE_API_TIMEOUT=0.5 s" in capsys.readouterr().err
    assert len(server.requests) == 2
    assert len(list((tmp_path / "snapshots" / "_runs").glob("*.json"))) == 1


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "Infinity"])
def test_a_timeout_that_is_no_deadline_is_refused_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HORDE_API_TIMEOUT", value)
    assert main(["run"]) == 2
    assert "HORDE_API_TIMEOUT" in capsys.readouterr().err
    assert not (tmp_path / "snapshots").exists()  # refused before any work


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_body_bound_is_refused_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HORDE_API_MAX_BYTES", value)
    assert main(["run"]) == 2
    assert "HORDE_API_MAX_BYTES" in capsys.readouterr().err


# --- HORDE_API_MAX_BYTES bounds a body -----------------------------------------------------------------


def test_an_endless_body_stops_at_the_bound_and_is_not_retried(serve: Callable[[Behaviour], LocalServer]) -> None:
    def endless(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"0" * 65536
        while True:  # until the client hangs up
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    server = serve(endless)
    with (
        HttpFetcher(max_bytes=1 << 20, attempts=3, sleep=lambda _: None) as fetcher,
        pytest.raises(FetchError, match="longer than HORDE_API_MAX_BYTES=1048576"),
    ):
        fetcher.get_bytes(server.url("/ref/stable_diffusion.json"))
    assert len(server.requests) == 1  # the same body would come back


def test_a_declared_length_above_the_bound_is_refused_before_reading(
    serve: Callable[[Behaviour], LocalServer],
) -> None:
    server = serve(lambda handler, attempt: send(handler, 200, b"[]", Content_Length=str(10**12)))
    with HttpFetcher(max_bytes=1000, attempts=1) as fetcher, pytest.raises(FetchError, match=r"declares 10+ bytes"):
        fetcher.get_bytes(server.url("/x"))


def test_the_bound_applies_to_reference_urls_too(serve: Callable[[Behaviour], LocalServer]) -> None:
    server = serve(lambda handler, attempt: send(handler, 200, b"{" + b" " * 5000 + b"}"))
    with HttpFetcher(max_bytes=4096, attempts=1) as fetcher, pytest.raises(FetchError, match="HORDE_API_MAX_BYTES"):
        load_records(server.url("/ref"), fetcher=fetcher)


def test_a_body_at_the_bound_is_read_whole(serve: Callable[[Behaviour], LocalServer]) -> None:
    server = serve(lambda handler, attempt: send(handler, 200, b"x" * 4096))
    with HttpFetcher(max_bytes=4096, attempts=1) as fetcher:
        assert fetcher.get_bytes(server.url("/x")) == b"x" * 4096


# --- redirects and final answers ------------------------------------------------------------------------


def test_a_redirect_to_another_host_is_an_error(serve: Callable[[Behaviour], LocalServer]) -> None:
    holder: list[LocalServer] = []

    def away(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        if handler.path.startswith("/api"):  # "localhost" names another host than "127.0.0.1"
            send(handler, 302, Location=holder[0].url("/elsewhere", host="localhost"))
        else:
            send(handler, 200, b"[]")

    server = serve(away)
    holder.append(server)
    with HttpFetcher(attempts=3, sleep=lambda _: None) as fetcher, pytest.raises(FetchError) as caught:
        load_horde(server.url("/api"), fetcher)
    assert "another host" in str(caught.value) and "localhost" in str(caught.value)
    assert server.requests == ["/api/v2/status/models?type=image&model_state=known"]  # neither followed nor retried


def test_a_redirect_on_the_same_host_is_followed(serve: Callable[[Behaviour], LocalServer]) -> None:
    def moved(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        if handler.path == "/old":
            send(handler, 301, Location="/new")
        else:
            send(handler, 200, b'{"ok": true}')

    server = serve(moved)
    with HttpFetcher(attempts=1) as fetcher:
        assert fetcher.get_bytes(server.url("/old")) == b'{"ok": true}'
    assert server.requests == ["/old", "/new"]


def test_endless_redirects_stop(serve: Callable[[Behaviour], LocalServer]) -> None:
    server = serve(lambda handler, attempt: send(handler, 302, Location=handler.path + "x"))
    with HttpFetcher(attempts=1) as fetcher, pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.get_bytes(server.url("/loop"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_client_error_is_reported_with_its_status_after_one_request(
    serve: Callable[[Behaviour], LocalServer], status: int
) -> None:
    server = serve(lambda handler, attempt: send(handler, status, b"no"))
    with HttpFetcher(attempts=3, sleep=lambda _: None) as fetcher, pytest.raises(FetchError) as caught:
        load_horde(server.url("/api"), fetcher)
    assert f"HTTP {status}" in str(caught.value) and "not retried" in str(caught.value)
    assert "attempt" not in str(caught.value)
    assert len(server.requests) == 1


# --- the HTTP cache heals -------------------------------------------------------------------------------


def _etag_server(serve: Callable[[Behaviour], LocalServer], body: bytes, statuses: list[int]) -> LocalServer:
    def conditional(handler: BaseHTTPRequestHandler, attempt: int) -> None:
        statuses.append(304 if handler.headers.get("If-None-Match") == '"v1"' else 200)
        send(handler, statuses[-1], b"" if statuses[-1] == 304 else body, ETag='"v1"')

    return serve(conditional)


@pytest.mark.parametrize(
    "damage",
    [
        lambda body, etag: body.write_bytes(b'{"trunc'),  # the copy no longer matches what the server vouched for
        lambda body, etag: etag.write_bytes(b"\xff\xfe garbage"),
        lambda body, etag: etag.write_text('"v1"'),  # an entry of an older layout: no checksum
        lambda body, etag: (etag.unlink(), etag.mkdir()),
    ],
)
def test_a_damaged_cache_entry_is_ignored_and_replaced(
    serve: Callable[[Behaviour], LocalServer],
    tmp_path: Path,
    damage: Callable[[Path, Path], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b'{"a": 1}'
    statuses: list[int] = []
    server = _etag_server(serve, body, statuses)
    cache = tmp_path / "cache"
    with HttpFetcher(cache_dir=cache, attempts=1) as fetcher:
        assert fetcher.get_bytes(server.url("/f")) == body
    (body_file,) = cache.glob("*.body")
    damage(body_file, body_file.with_suffix(".etag"))
    with caplog.at_level(logging.WARNING), HttpFetcher(cache_dir=cache, attempts=1) as fetcher:
        assert fetcher.get_bytes(server.url("/f")) == body  # fetched whole again
    assert "http cache entry damaged" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), HttpFetcher(cache_dir=cache, attempts=1) as fetcher:
        assert fetcher.get_bytes(server.url("/f")) == body
    assert statuses[:2] == [200, 200]
    if body_file.with_suffix(".etag").is_file():  # healed: the third fetch is conditional and quiet
        assert statuses[2] == 304 and "damaged" not in caplog.text


def test_an_intact_cache_entry_is_reused_on_304(serve: Callable[[Behaviour], LocalServer], tmp_path: Path) -> None:
    statuses: list[int] = []
    server = _etag_server(serve, b"[1, 2]", statuses)
    for _ in range(2):
        with HttpFetcher(cache_dir=tmp_path / "cache", attempts=1) as fetcher:
            assert fetcher.get_bytes(server.url("/f")) == b"[1, 2]"
    assert statuses == [200, 304] and len(server.requests) == 2


def test_a_refused_redirect_names_no_credentials_of_the_source_url(
    serve: Callable[[Behaviour], LocalServer], capsys: pytest.CaptureFixture[str]
) -> None:
    holder: list[LocalServer] = []
    server = serve(lambda handler, attempt: send(handler, 302, Location=holder[0].url("/x", host="localhost")))
    holder.append(server)
    source = f"http://reader:s3cret-pass@127.0.0.1:{server.port}/api"
    assert main(["run", "--horde", source]) == 1
    err = capsys.readouterr().err
    assert "another host" in err and "s3cret-pass" not in err
