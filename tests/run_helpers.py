"""Helpers for tests that drive real runs: a Horde API that holds a run in its load stage, the CLI in a
subprocess with its structured log read line by line, and checks that Redis and history agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import redis

from pipeline.contracts import keys
from pipeline.sinks.parquet_snapshot import ARTIFACT_SUFFIXES, ARTIFACTS, TABLES, manifests
from tests.conftest import SAMPLE_DATA

REPO = Path(__file__).resolve().parents[1]


class GatedHorde:
    """A local AI Horde API (127.0.0.1) serving the sample snapshot, whose first request waits at a gate.

    A run pointed at it takes its locks, sends the request and blocks in its load stage until ``open()``: the
    test then knows exactly where the run is (``entered``), with no sleep, and can pause, signal or break
    things around it.
    """

    def __init__(self, folder: Path = SAMPLE_DATA / "horde") -> None:
        self.folder = folder
        self.entered = threading.Event()
        #: Holds the first request until set (``open``).
        self.gate = threading.Event()
        gated = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not gated.entered.is_set():
                    gated.entered.set()
                    gated.gate.wait(timeout=120)
                body = gated.body(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def body(self, path: str) -> bytes | None:
        parsed = urlparse(path)
        model_type = parse_qs(parsed.query).get("type", [""])[0]
        files = {
            "/api/v2/status/models": f"status_{model_type}.json",
            "/api/v2/stats/img/models": "stats_image.json",
            "/api/v2/stats/text/models": "stats_text.json",
            "/api/v2/workers": f"workers_{model_type}.json",
        }
        name = files.get(parsed.path)
        return (self.folder / name).read_bytes() if name and (self.folder / name).is_file() else None

    def wait_entered(self, timeout: float = 60) -> None:
        assert self.entered.wait(timeout), "the run never asked the Horde API"

    def open(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.open()
        self.server.shutdown()
        self.server.server_close()


class CliRun:
    """``python -m jobs ARGS`` in a subprocess; its JSON log (stderr) is read as events."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, **popen: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobs", *args],
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )
        self.lines: list[str] = []

    def events(self) -> Iterator[dict[str, Any]]:
        """Each log event as it is written (non-JSON lines, such as the final message, are kept in ``lines``)."""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith("{"):
                yield json.loads(line)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for event in self.events():
            if predicate(event):
                return event
        raise AssertionError(f"the run ended before the awaited event:\n{''.join(self.lines)}")

    def wait_for_stage(self, stage: str) -> dict[str, Any]:
        return self.wait_for(lambda event: event.get("event") == "stage finished" and event.get("stage") == stage)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Exit code, stdout and all of stderr."""
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out, "".join(self.lines) + err


def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``predicate`` (a state of a real component, never a duration) until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def committed_ids(root: Path) -> list[str]:
    return [manifest["run_id"] for manifest in manifests(root)]


def redis_run_ids(client: redis.Redis, prefix: str) -> tuple[str | None, set[str]]:
    """The run id of ``last_run`` and the run ids every statistics / deletion-risk key carries."""
    raw = client.get(keys.last_run_key(prefix))
    last = json.loads(raw)["run_id"] if raw is not None else None
    carried = set()
    for key in client.scan_iter(match=f"{prefix}:*"):
        name = key.decode()
        if ":stats:" in name or ":deletion_risk:" in name:
            value = client.get(key)
            if value is not None:
                carried.add(json.loads(value)["run_id"])
    return last, carried


def uncommitted_files(root: Path) -> list[Path]:
    """Files of runs that have no manifest (or any ``.tmp``) in the store."""
    committed = set(committed_ids(root))
    found = [path for path in root.rglob("*.tmp")]
    for table in TABLES:
        found += [path for path in (root / table).rglob("*.parquet") if path.stem not in committed]
    for name in ARTIFACTS:
        found += [
            path
            for path in (root / f"_{name}").glob("*")
            if path.suffix in ARTIFACT_SUFFIXES and path.stem not in committed
        ]
    return found


def child_env(**extra: str) -> dict[str, str]:
    """This test's environment (isolated by the conftest fixtures) plus ``extra``."""
    return {**os.environ, **extra}
