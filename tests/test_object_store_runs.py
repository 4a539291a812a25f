"""Whole runs against a real S3-compatible server on 127.0.0.1 (moto's standalone server; SPEC §9): a full run
then `query`, `report` and the README's Polars reader; a run killed while committing (no manifest, readers ignore
it, the next run sweeps it); two runs racing for the lock object; credentials never printed."""

from __future__ import annotations

import http.client
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import polars as pl
import pytest

from jobs.__main__ import main
from pipeline.sinks.parquet_snapshot import TABLES, history, latest_table, manifests
from pipeline.sinks.store import open_store
from pipeline.sinks.store_lock import LOCK_KEY
from tests.run_helpers import CliRun, GatedHorde, child_env
from tests.s3_server import SECRET_KEY, S3Server


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def uncommitted_keys(location: str) -> list[str]:
    """Keys of tables and artifacts that no committed manifest names."""
    store = open_store(location)
    committed = {manifest["run_id"] for manifest in manifests(store)}
    keys = [key for table in TABLES for key in store.list(table)] + store.list("_redis")
    return [key for key in keys if key.rsplit("/", 1)[-1].split(".")[0] not in committed]


def test_runs_to_s3_are_read_by_query_report_history_and_polars(
    s3_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run"]) == 0
    assert not (tmp_path / "snapshots").exists(), "nothing is written to a local folder"
    store = open_store(s3_location)
    (manifest,) = manifests(s3_location)
    assert store.exists(f"_runs/{manifest['run_id']}.json")
    risk = latest_table(s3_location, "deletion_risk", "image_generation")
    assert risk is not None and risk.height > 0
    assert set(risk["run_id"].to_list()) == {manifest["run_id"]}
    capsys.readouterr()

    assert main(["query", "--category", "image_generation", "--json", "--limit", "3"]) == 0
    assert '"category": "image_generation"' in capsys.readouterr().out

    assert main(["report", "--out", str(tmp_path / "page")]) == 0
    assert (tmp_path / "page" / "report.html").is_file()

    # history: a second run (its model_state carried from the first, read back from the bucket), then one
    # model's timeline over both, and a rebuild of model_state that rewrites manifests in the bucket
    assert main(["run"]) == 0
    name = str(risk["name"][0])
    capsys.readouterr()
    assert main(["history", "--category", "image_generation", "--json", name]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["history", "--rebuild"]) == 0
    assert len(manifests(s3_location)) == 2
    manifest = manifests(s3_location)[-1]

    # the README's Polars example, pointed at the bucket: every committed run, read by Polars' own S3 reader
    followed = history(s3_location, "deletion_risk")
    assert followed is not None
    frame = followed.filter(pl.col("category") == "text_generation").collect()
    assert frame.height > 0 and manifest["run_id"] in set(frame["run_id"].to_list())
    assert set(frame["run_id"].to_list()) == {m["run_id"] for m in manifests(s3_location)}
    assert SECRET_KEY not in printed(capsys)


class GatedS3:
    """A pass-through proxy (127.0.0.1) in front of the S3 server that holds the first PUT of a manifest
    (``_runs/*.json``) forever: a run sending it is exactly between its tables and its commit."""

    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self.entered = threading.Event()
        self.release = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "/_runs/" in self.path and not gate.entered.is_set():
                    gate.entered.set()
                    gate.release.wait(timeout=120)
                    self.close_connection = True
                    return
                connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                headers["Host"] = target.netloc
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gated_s3(s3_server: S3Server) -> Iterator[GatedS3]:
    gate = GatedS3(s3_server.endpoint)
    yield gate
    gate.close()


def test_a_run_killed_while_committing_is_ignored_then_swept(
    s3_location: str, gated_s3: GatedS3, tmp_path: Path
) -> None:
    assert main(["run"]) == 0
    (previous,) = manifests(s3_location)

    killed = CliRun(["run"], child_env(AWS_ENDPOINT_URL=gated_s3.endpoint), tmp_path)
    killed.wait_for_stage("snapshot")  # every table is in the bucket
    assert gated_s3.entered.wait(60), "the run never sent its manifest"  # and its manifest is on the way
    killed.process.send_signal(signal.SIGKILL)
    assert killed.finish()[0] == -signal.SIGKILL

    assert [m["run_id"] for m in manifests(s3_location)] == [previous["run_id"]]
    orphans = uncommitted_keys(s3_location)
    assert orphans, "the killed run's tables are in the bucket"
    risk = latest_table(s3_location, "deletion_risk", "image_generation")
    assert risk is not None and set(risk["run_id"].to_list()) == {previous["run_id"]}  # readers ignore them
    followed = history(s3_location, "deletion_risk")
    assert followed is not None
    assert set(followed.collect()["run_id"].to_list()) == {previous["run_id"]}

    # The killed run's lock object is still there: the next run may take it over only once it is stale.
    store = open_store(s3_location)
    assert store.exists(LOCK_KEY)
    store.delete(LOCK_KEY)  # (the stale-lock takeover itself is tested in tests/test_store.py)
    assert main(["run"]) == 0
    assert len(manifests(s3_location)) == 2
    assert uncommitted_keys(s3_location) == []  # swept
    assert not store.exists(LOCK_KEY)  # released


def test_two_runs_race_for_the_lock_object(
    s3_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    horde = GatedHorde()
    try:
        first = CliRun(["run", "--horde", horde.url], child_env(), tmp_path)
        horde.wait_entered()  # the first run holds the lock object and waits in its load stage
        capsys.readouterr()
        assert main(["run"]) == 3
        err = capsys.readouterr().err
        assert f"{s3_location}/{LOCK_KEY}" in err and "holds the lock" in err
        horde.open()
        code, _, output = first.finish()
        assert code == 0, output
    finally:
        horde.close()
    assert len(manifests(s3_location)) == 1
    assert not open_store(s3_location).exists(LOCK_KEY)


def test_credentials_are_never_printed(
    s3_location: str, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = CliRun(["run"], child_env(), tmp_path)
    code, out, err = ok.finish()
    assert code == 0, err
    assert SECRET_KEY not in out + err

    for argv in (["query", "--category", "image_generation"], ["report", "--out", str(tmp_path / "r")]):
        code, out, err = CliRun(argv, child_env(), tmp_path).finish()
        assert code == 0, err
        assert SECRET_KEY not in out + err

    missing = f"s3://no-such-bucket-{tmp_path.name.lower()[-8:]}/x"
    for argv in (["run"], ["query", "--category", "image_generation"], ["report"]):
        code, out, err = CliRun(argv, child_env(SNAPSHOT_DIR=missing), tmp_path).finish()
        assert code != 0
        assert "no-such-bucket" in err  # the failure names the location...
        assert SECRET_KEY not in out + err  # ...never the secret
