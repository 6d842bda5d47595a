"""`kubemetrics demo` end to end: simulator + kubemetrics serve as children, a kubeconfig kubectl can
use, and a clean stop (SIGTERM → exit 0, both process groups gone; a dead child → non-zero exit)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from harness import ChildProcess, children_of, kubemetrics_argv, wait_until
from test_simulator_server import free_loopback_block

pytestmark = pytest.mark.integration


def demo_argv(tmp_path: Path, nodes: int = 3) -> list[str]:
    base, port = free_loopback_block()
    return kubemetrics_argv(
        "demo",
        f"--nodes={nodes}",
        "--pods-per-node=5",
        "--metric-resolution=12s",
        "--workers=1",
        f"--work-dir={tmp_path / 'work'}",
        f"--address-base={base}",
        f"--kubelet-port={port}",
        "--ready-timeout=90s",
    )


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_serves_kubectl_top_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    demo = ChildProcess("demo", demo_argv(tmp_path), tmp_path)
    try:
        wait_until(lambda: "is up" in demo.log_text() or not demo.alive(), 150, what="the demo to be up")
        assert demo.alive(), demo.log_text()
        kubeconfig = tmp_path / "work" / "kubeconfig"
        assert f"kubectl --kubeconfig {kubeconfig} top nodes" in demo.log_text()
        server = next(line for line in kubeconfig.read_text().splitlines() if "server:" in line)
        port = int(server.rsplit(":", 1)[1])
        groups = children_of(demo.pid)
        assert len(groups) == 2
        if shutil.which("kubectl"):
            top = subprocess.run(
                ["kubectl", "--kubeconfig", str(kubeconfig), "top", "nodes", "--no-headers"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert top.returncode == 0, top.stderr
            rows = [line.split() for line in top.stdout.splitlines()]
            assert sorted(row[0] for row in rows) == ["sim-node-0", "sim-node-1", "sim-node-2"]
            assert all(row[1].endswith("m") for row in rows)

        os.kill(demo.pid, signal.SIGTERM)
        assert demo.process.wait(timeout=30) == 0
        assert all(group_gone(pgid) for pgid in groups)
        assert port_closed(port)
    finally:
        demo.stop()


def test_demo_exits_non_zero_and_stops_the_other_child_when_one_dies(tmp_path: Path) -> None:
    demo = ChildProcess("demo", demo_argv(tmp_path, nodes=2), tmp_path)
    try:
        wait_until(lambda: "starting kubemetrics" in demo.log_text() or not demo.alive(), 60, what="the front to start")
        groups = children_of(demo.pid)
        simulator = next(pid for pid in groups if b"simulate" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.killpg(simulator, signal.SIGKILL)

        assert demo.process.wait(timeout=30) == 1
        assert "simulator exited with code -9" in demo.log_text()
        assert all(group_gone(pgid) for pgid in groups)
    finally:
        demo.stop()
