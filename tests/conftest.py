"""Shared fixtures: real data, a real redis-server, isolated settings.

Skips are loud: each is listed at the end of the run. With HORDE_ANALYTICS_STRICT=1 (CI sets it) a fixture
that would skip fails instead, so CI can never go green on skipped checks.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
ENV_REDIS_URL = os.environ.get("REDIS_URL")
STRICT = os.environ.get("HORDE_ANALYTICS_STRICT", "").lower() in {"1", "true", "yes"}
_SKIPPED_SERVICES: list[str] = []
#: (API path, ``type`` query) -> the snapshot file a local Horde API serves for it (SPEC §2.2 layout).
HORDE_API_FILES: dict[tuple[str, str | None], str] = {
    ("/api/v2/status/models", "image"): "status_image.json",
    ("/api/v2/status/models", "text"): "status_text.json",
    ("/api/v2/stats/img/models", None): "stats_image.json",
    ("/api/v2/stats/text/models", None): "stats_text.json",
    ("/api/v2/workers", "image"): "workers_image.json",
    ("/api/v2/workers", "text"): "workers_text.json",
}

#: The S3-compatible server fixtures (``s3_server``, ``s3_location``) live beside the tests that use them.
pytest_plugins = ("tests.s3_server",)


def skip_or_fail(reason: str) -> None:
    """Skip (locally) or fail (in CI) with ``reason``."""
    _SKIPPED_SERVICES.append(reason)
    if STRICT:
        pytest.fail(f"HORDE_ANALYTICS_STRICT is set and a required resource is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``../shared/data`` or HORDE_ANALYTICS_SHARED_DATA)."""
    path = Path(os.environ.get("HORDE_ANALYTICS_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "model_reference" / "stable_diffusion.json").is_file():
        skip_or_fail(f"real data not found at {path} (set HORDE_ANALYTICS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def real_reference(shared_data: Path) -> Path:
    return shared_data / "model_reference"


@pytest.fixture(scope="session")
def real_horde(shared_data: Path) -> Path:
    return shared_data / "horde"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process of our own on a free port (stop/start to simulate outages)."""

    def __init__(self, binary: str, workdir: Path, password: str | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f"default:{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def redis_server_binary() -> str:
    """The redis-server on PATH; skipped (failed under STRICT) when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server not found on PATH (apt-get install redis-server)")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Our own redis-server; skipped (failed under STRICT) when the binary is missing."""
    binary = redis_server_binary()
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis-server of our own (for the masking tests)."""
    binary = redis_server_binary()
    server = RedisServer(binary, tmp_path, password="s3cret-Hunter2")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of one test alone (it may be stopped, paused, made a replica or filled up)."""
    binary = redis_server_binary()
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(binary, folder)
    server.start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """REDIS_URL when the developer set one (keys isolated by a unique prefix, nothing flushed), else a
    flushed database on our own server."""
    import uuid

    import redis

    monkeypatch.setenv("REDIS_KEY_PREFIX", f"test-{uuid.uuid4().hex[:8]}:horde:model_ref")
    if ENV_REDIS_URL:
        yield ENV_REDIS_URL
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    if server.process is None:
        server.start()
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    client.close()
    yield server.url


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Commands install a root log handler on the test's captured stderr; put the old ones back."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's environment or .env, or writes outside its tmp dir by default."""
    for name in list(os.environ):
        if name.startswith("HORDE_MODEL_REFERENCE_") or name in {
            "MODEL_REFERENCE_SOURCE",
            "HORDE_SOURCE",
            "SNAPSHOT_DIR",
            "REDIS_KEY_PREFIX",
            "GROUP_BY_VARIANT",
        }:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_REFERENCE_SOURCE", str(SAMPLE_DATA / "model_reference"))
    monkeypatch.setenv("HORDE_SOURCE", str(SAMPLE_DATA / "horde"))
    monkeypatch.setenv("SNAPSHOT_DIR", str(tmp_path / "snapshots"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SKIPPED_SERVICES:
        terminalreporter.section("SKIPPED FOR A MISSING RESOURCE", sep="!", red=True, bold=True)
        for reason in sorted(set(_SKIPPED_SERVICES)):
            terminalreporter.line(f"  {reason}", red=True)
        terminalreporter.line("  (CI sets HORDE_ANALYTICS_STRICT=1, which turns these into failures)")
