"""At a real terminal (a pseudo-terminal), log lines are the console format, and a model name's control
characters are shown as escapes: a reference entry cannot clear the screen or recolour the operator's terminal."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SAMPLE_DATA

HOSTILE = "Evil\x1b[2J\x1b[31mRed\x9b6n\u202eModel"


def terminal_output(argv: list[str], env: dict[str, str]) -> bytes:
    """Everything ``python -m jobs ARGV`` writes to a pseudo-terminal (stdout and stderr) until it exits."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs", *argv], stdout=secondary, stderr=secondary, env=env, cwd=REPO
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(timeout=120) == 0
    return b"".join(chunks)


def test_console_log_lines_escape_a_hostile_model_name(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    shutil.copytree(SAMPLE_DATA / "model_reference", reference)
    records = json.loads((reference / "stable_diffusion.json").read_text())
    # an unknown baseline: the run logs an "input problem" line that names the model
    records[HOSTILE] = {**records["Experimental SD3 Merge"], "name": HOSTILE}
    (reference / "stable_diffusion.json").write_text(json.dumps(records))
    env = {
        **os.environ,
        "MODEL_REFERENCE_SOURCE": str(reference),
        "HORDE_SOURCE": str(SAMPLE_DATA / "horde"),
        "SNAPSHOT_DIR": str(tmp_path / "snapshots"),
    }
    output = terminal_output(["run"], env).decode()
    assert "input problem" in output and not output.lstrip().startswith("{")  # the console format
    assert "\x1b" not in output and "\x9b" not in output and "\u202e" not in output
    assert "model=Evil\\x1b[2J\\x1b[31mRed\\x9b6n\\u202eModel" in output
