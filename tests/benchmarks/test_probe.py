"""benchmarks._probe: GET /health on a fixed schedule from its own process, timed from when due."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._probe import Probe
from benchmarks._samples import read_samples
from reference_app.testing import free_port, live_server

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


async def test_the_probe_samples_on_schedule_and_marks_a_dead_server_as_failures(
    tmp_path: Path,
) -> None:
    with live_server(
        "benchmarks._receiver:app", log_path=tmp_path / "server.log", cwd=ROOT
    ) as server:
        probe = Probe("127.0.0.1", server.port, "/count", interval=0.02)
        await probe.run(asyncio.Event(), seconds=0.5)
    assert len(probe.samples) == 25  # every 20 ms for 0.5 s
    assert all(s.ok and s.model == "probe" and not s.gated for s in probe.samples)
    starts = sorted(s.start_s for s in probe.samples)
    assert round(starts[-1] - starts[0], 3) == 0.48

    dead = Probe("127.0.0.1", free_port(), interval=0.05)
    await dead.run(asyncio.Event(), seconds=0.2)
    assert len(dead.samples) == 4
    assert not any(s.ok for s in dead.samples)


def test_the_probe_process_writes_its_samples_when_stopped_by_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "probe.csv"
    with live_server(
        "benchmarks._receiver:app", log_path=tmp_path / "server.log", cwd=ROOT
    ) as server:
        command = [sys.executable, "-m", "benchmarks._probe", "--url", server.url]
        command += ["--path", "/count", "--interval-ms", "20", "--out", str(out)]
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            _, err = process.communicate(timeout=1.5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    samples = list(read_samples(out))
    assert len(samples) > 5
    assert all(s.ok for s in samples)
    assert "probe /count:" in err
