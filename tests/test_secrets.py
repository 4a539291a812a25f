"""No secret reaches a log or the terminal (SPEC §9): masking rules, then real runs with credentials in REDIS_URL
(a password-protected redis-server, an unreachable one) and in the source URLs (a local HTTP server), with
httpx and httpcore logging at DEBUG."""

from __future__ import annotations

import base64
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobs.__main__ import main
from pipeline.contracts.masking import masked_text, masked_url
from pipeline.shell.logs import ConsoleFormatter, JsonFormatter, SecretMaskingFilter
from tests.conftest import HORDE_API_FILES, SAMPLE_DATA, RedisServer, free_port

SECRET = "s3cret-Hunter2"  # the password_redis fixture's password


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw-123@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw-123@host:6379", "redis://user:***@host:6379"),
        ("rediss://default:pw-123@host:6380/2", "rediss://default:***@host:6380/2"),
        ("redis://host:6379/0?password=pw-123&db=1", "redis://host:6379/0?password=***&db=1"),
        ("redis://:p%40ss%2Fword@host/0", "redis://:***@host/0"),
        ("redis://:p@ss@word@host:6379/0", "redis://:***@host:6379/0"),  # an unencoded "@" in the password
        ("https://ghp_token123@example.org/x", "https://***@example.org/x"),  # a bare token as the user
        ("http://127.0.0.1:8080/ref?token=abc123&x=1", "http://127.0.0.1:8080/ref?token=***&x=1"),
        ("https://h/a?api_key=k1&apikey=k2&access_token=k3&secret=k4&key=k5", None),
        ("https://b.s3.amazonaws.com/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12&X-Amz-Date=1", None),
        ("https://h/cb#access_token=tok123&state=1", "https://h/cb#access_token=***&state=1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("sample_data/horde", "sample_data/horde"),
    ],
)
def test_masked_url(url: str, masked: str | None) -> None:
    result = masked_url(url)
    assert result is not None
    if masked is not None:
        assert result == masked
    for secret in ("pw-123", "p@ss", "ghp_token123", "abc123", "k1", "k2", "k3", "k4", "k5", "ab12", "AKIA", "tok123"):
        assert secret not in result
    if "X-Amz-Date" in url:
        assert "X-Amz-Date=1" in result  # a parameter that is not a secret stays readable


def test_masked_text_masks_every_url_and_the_known_password_anywhere() -> None:
    text = "Error 111 connecting to redis://:pw%2Bsecret@db:6379. AUTH pw+secret refused; see http://u:p4ss@h/x"
    masked = masked_text(text, "redis://:pw%2Bsecret@db:6379")
    assert "pw%2Bsecret" not in masked and "pw+secret" not in masked and "p4ss" not in masked
    assert "redis://:***@db:6379" in masked
    # several settings at once: each one's secrets go, wherever they are quoted
    both = masked_text("auth pw-aaa1 / token tok-bbb2", "redis://:pw-aaa1@db", "http://h/ref?token=tok-bbb2")
    assert both == "auth *** / token ***"


def test_the_filter_masks_message_arguments_extras_and_exceptions() -> None:
    """What httpx does (a URL as a %-argument) and what our code does (a URL in ``extra``, in an exception)."""
    masking = SecretMaskingFilter(["redis://:pw-0123@db"])
    problem = ValueError("cannot reach redis://:pw-0123@db:6379 (pw-0123)")
    try:
        raise problem
    except ValueError:
        record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", None, sys.exc_info())
    record.args = ("GET", "http://u:pw-0123@h/x?token=tok-999")
    record.__dict__["error"] = problem
    record.__dict__["url"] = "https://h/?apikey=key-777"
    assert masking.filter(record)
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        line = formatter.format(record)
        for secret in ("pw-0123", "tok-999", "key-777"):
            assert secret not in line
        assert "HTTP Request: GET http://u:***@h/x?token=***" in line


def test_console_lines_escape_control_characters() -> None:
    record = logging.makeLogRecord(
        {"msg": "input problem \x1b[2J", "levelname": "WARNING", "model": "evil\x1b[31m\x9b"}
    )
    line = ConsoleFormatter().format(record)
    assert "\x1b" not in line and "\x9b" not in line
    assert "\\x1b[2J" in line and "model=evil\\x1b[31m\\x9b" in line


@pytest.fixture
def chatty_http_loggers() -> Iterator[None]:
    """httpx and httpcore log at DEBUG (httpx logs each request's URL at INFO, httpcore its connections)."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


@pytest.mark.usefixtures("chatty_http_loggers")
def test_password_query_parameter_against_a_password_protected_redis(
    password_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{password_redis.port}/0?password={SECRET}")
    assert main(["run"]) == 0
    output = printed(capsys)
    assert "published" in output  # the password was right and used
    assert SECRET not in output

    # the wrong password: refused by the server; neither password is printed
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{password_redis.port}/0?password=wrong-{SECRET}")
    main(["run"])
    output = printed(capsys)
    assert SECRET not in output
    assert "password=***" in output  # the operator still sees which URL was used


@pytest.mark.parametrize(
    "template",
    [
        "redis://127.0.0.1:{port}/0?password={secret}",
        "redis://default:{secret}@127.0.0.1:{port}/0",
        "rediss://:{secret}@127.0.0.1:{port}/0",
    ],
)
def test_unreachable_redis_does_not_print_its_password(
    template: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", template.format(port=free_port(), secret=SECRET))
    main(["run"])
    output = printed(capsys)
    assert "redis" in output.lower()  # the problem is reported...
    assert SECRET not in output  # ...without the password


USER, PASSWORD, TOKEN = "analyst", "Ref-Pass-31337", "Tok-Secret-4242"


def serve_sources(httpserver: HTTPServer) -> list[str]:
    """The sample reference under /ref/ and the sample Horde snapshot under /api/, behind basic auth."""
    authorization = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.full_path)
        if request.headers.get("Authorization") != authorization:
            return Response("who are you?", status=401)
        if request.path.startswith("/ref/"):
            path = SAMPLE_DATA / "model_reference" / request.path.removeprefix("/ref/")
            return Response(path.read_bytes()) if path.is_file() else Response("not found", status=404)
        kind = request.args.get("type") if "status" in request.path or "workers" in request.path else None
        name = HORDE_API_FILES.get((request.path, kind))
        if name is None:
            return Response("not found", status=404)
        return Response((SAMPLE_DATA / "horde" / name).read_bytes(), content_type="application/json")

    httpserver.expect_request(re.compile("/.*")).respond_with_handler(handler)
    return seen


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@", 1)


@pytest.mark.usefixtures("chatty_http_loggers")
def test_credentials_in_source_urls_stay_out_of_the_log(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = serve_sources(httpserver)
    monkeypatch.setenv("MODEL_REFERENCE_SOURCE", with_credentials(httpserver.url_for("/ref")))
    monkeypatch.setenv("HORDE_SOURCE", with_credentials(httpserver.url_for("/api")))
    assert main(["run"]) == 0
    output = printed(capsys)
    assert any(path.startswith("/ref/stable_diffusion.json") for path in seen)
    assert "HTTP Request: GET" in output  # httpx's own lines are there, masked
    assert PASSWORD not in output


@pytest.mark.usefixtures("chatty_http_loggers")
@pytest.mark.parametrize(
    ("reference", "horde"),
    [
        # a token in the query string: the server answers 404 for every category file
        (lambda url: f"{with_credentials(url)}?token={TOKEN}", lambda url: with_credentials(url)),
        # the right credentials for the reference, a Horde API that is not there (retried, then the run fails)
        (lambda url: with_credentials(url), lambda url: with_credentials(url).replace("/api", "/missing")),
    ],
    ids=["token-404", "userinfo-failing-horde"],
)
def test_a_failing_run_does_not_print_source_credentials(
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reference: object,
    horde: object,
) -> None:
    serve_sources(httpserver)
    assert callable(reference) and callable(horde)
    monkeypatch.setenv("MODEL_REFERENCE_SOURCE", reference(httpserver.url_for("/ref")))
    monkeypatch.setenv("HORDE_SOURCE", horde(httpserver.url_for("/api")))
    monkeypatch.setenv("HORDE_API_RETRIES", "2")
    assert main(["run"]) != 0
    output = printed(capsys)
    assert "run failed" in output
    assert PASSWORD not in output and TOKEN not in output
    assert not list(Path("snapshots").glob("_runs/*.json"))
