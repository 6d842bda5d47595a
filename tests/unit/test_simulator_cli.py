"""`kubemetrics simulate` as a process: it announces readiness, serves, and stops cleanly on SIGTERM
leaving nothing behind; bad flags are refused with a message."""

from __future__ import annotations

import calendar
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness import ChildProcess, children_of, kubemetrics_argv, wait_until
from kubemetrics.simulator.model import Model, SimulationParameters
from test_simulator_server import free_loopback_block

pytestmark = pytest.mark.integration


def fetch(url: str, ca_file: Path) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def refuses_connections(address: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((address, port)) != 0


def test_simulate_serves_until_sigterm_then_exits_0_leaving_nothing_behind(tmp_path: Path) -> None:
    base, port = free_loopback_block()
    out_dir = tmp_path / "out"
    child = ChildProcess(
        "simulate",
        kubemetrics_argv(
            "simulate",
            "--nodes=4",
            "--pods-per-node=3",
            "--seed=9",
            f"--out-dir={out_dir}",
            f"--address-base={base}",
            f"--port={port}",
            "--fault=sim-node-1=http500",
        ),
        tmp_path,
    )
    try:
        ready_file = out_dir / "ready"
        wait_until(lambda: ready_file.exists() or not child.alive(), 30, what="the simulator's ready file")
        assert child.alive(), child.log_text()
        ready = json.loads(ready_file.read_text())
        assert ready["pid"] == child.pid
        assert (ready["firstAddress"], ready["lastAddress"]) == (str(base + 1), str(base + 4))
        assert "kubemetrics simulate: 4 nodes, 1 with faults (12 pods" in child.log_text()

        status, body = fetch(f"https://{base + 1}:{port}/stats/summary?only_cpu_and_memory=true", out_dir / "ca.crt")
        assert status == 200
        node = json.loads(body)["node"]
        assert node["nodeName"] == "sim-node-0"
        assert fetch(f"https://{base + 2}:{port}/stats/summary", out_dir / "ca.crt")[0] == 500
        # The ground truth is rebuilt from the parameters the simulator wrote.
        model = Model(SimulationParameters.from_file(out_dir / "simulation.json"))
        assert model.params.origin == ready["origin"]
        assert model.node_names() == ["sim-node-0", "sim-node-1", "sim-node-2", "sim-node-3"]
        sampled = calendar.timegm(time.strptime(node["cpu"]["time"], "%Y-%m-%dT%H:%M:%SZ"))
        usage = model.node_usage("sim-node-0", sampled)
        assert node["cpu"]["usageCoreNanoSeconds"] == usage.cpu_cumulative_nanoseconds
        assert node["memory"]["workingSetBytes"] == usage.memory_working_set_bytes
        assert children_of(child.pid) == []

        os.kill(child.pid, signal.SIGTERM)
        assert child.process.wait(timeout=15) == 0
        assert not ready_file.exists()
        assert all(refuses_connections(str(base + i), port) for i in range(1, 5))
        with pytest.raises(ProcessLookupError):
            os.killpg(child.pid, 0)
    finally:
        child.stop()


def test_unknown_fault_node_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    result = subprocess.run(
        kubemetrics_argv("simulate", "--nodes=2", f"--out-dir={tmp_path}", "--fault=sim-node-7=hang"),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert b"no simulated node 'sim-node-7'" in result.stderr
    assert not (tmp_path / "ready").exists()
