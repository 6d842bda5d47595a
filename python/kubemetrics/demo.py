"""`kubemetrics demo` (`make demo`): a simulated cluster and kubemetrics serving it, for kubectl.

Starts `kubemetrics simulate` and `kubemetrics serve --standalone-core-api` as children, each in its
own process group, waits until the kubelets listen and the API is ready, writes a kubeconfig, prints
what to try, and waits. Ctrl-C or SIGTERM stops both process groups (SIGTERM, then SIGKILL) and
exits 0; a child that dies stops the demo with a non-zero exit.
"""

from __future__ import annotations

import argparse
import base64
import collections
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import orjson

from kubemetrics.options import parse_duration
from kubemetrics.simulator.addresses import DEFAULT_BASE

KUBECONFIG_FILE = "kubeconfig"
_STOP_GRACE_SECONDS = 10.0


def _seconds(text: str) -> float:
    """A plain number of seconds, or a Go duration ("90s", "2m")."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=200, help="Simulated nodes (default 200).")
    parser.add_argument("--pods-per-node", type=int, default=30, help="Pods per simulated node (default 30).")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the simulated cluster (default 1).")
    parser.add_argument(
        "--metric-resolution",
        default="15s",
        help="Passed to kubemetrics serve (default 15s, as metrics-server's manifests).",
    )
    parser.add_argument("--workers", type=int, default=0, help="Scraping workers (default: one per core).")
    parser.add_argument(
        "--work-dir",
        default=".demo",
        help="Directory for certificates, inventory, kubeconfig and logs, reused by later runs (default .demo).",
    )
    parser.add_argument(
        "--secure-port", type=int, default=0, help="Port of the metrics API on 127.0.0.1 (default: a free one)."
    )
    parser.add_argument(
        "--kubelet-port", type=int, default=10250, help="Port of the simulated kubelets (default 10250)."
    )
    parser.add_argument(
        "--address-base",
        default=str(DEFAULT_BASE),
        help="First loopback address of the simulated nodes (default 127.1.0.0).",
    )
    parser.add_argument(
        "--ready-timeout",
        type=_seconds,
        default=180.0,
        help="How long to wait for everything to be ready (default 3m).",
    )
    parser.add_argument(
        "--exit-after",
        type=_seconds,
        default=0.0,
        help="Stop by itself this long after becoming ready (default: run until Ctrl-C).",
    )


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what failed and where its log is."""


class DemoTimeout(DemoError):
    """Something did not become ready in time."""


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def exited(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the demo itself dies without stopping its children
    (e.g. SIGKILL), since their own sessions keep them out of reach of the demo's process group."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_child(name: str, argv: Sequence[str], work_dir: Path) -> _Child:
    log_path = work_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )
    return _Child(name, process, log_path)


def _signal_group(child: _Child, signum: signal.Signals) -> None:
    try:
        os.killpg(child.process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop_children(children: Sequence[_Child], grace_seconds: float = _STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child's process group, wait, then SIGKILL whatever is left of the groups."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"kubemetrics demo: {child.name} did not stop within {grace_seconds:g}s; killing it", file=sys.stderr)
    for child in children:
        # Also reaps what the child left behind in its group (e.g. serve's workers).
        _signal_group(child, signal.SIGKILL)
        try:
            child.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _StopRequest:
    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _wait_for(
    what: str, ready: Callable[[], bool], children: Sequence[_Child], stop: _StopRequest, timeout: float
) -> bool:
    """Poll `ready` until true; False if a stop was requested. Raises DemoError on timeout or child death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.requested:
            return False
        _check_children(children)
        if ready():
            return True
        # Slow polling: every failed /readyz is a log line on the front.
        time.sleep(1.0)
    raise DemoTimeout(f"timed out after {timeout:g}s waiting for {what}")


def _check_children(children: Sequence[_Child]) -> None:
    for child in children:
        code = child.exited()
        if code is not None:
            tail = child.log_tail()
            raise DemoError(f"{child.name} exited with code {code}; last lines of {child.log_path}:\n{tail}")


def _api_ready(port: int, cert_file: Path) -> bool:
    if not cert_file.exists():
        return False
    try:
        context = ssl.create_default_context(cafile=str(cert_file))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ssl.SSLError, urllib.error.URLError):
        return False


def _nodes_with_metrics(port: int, cert_file: Path) -> int:
    context = ssl.create_default_context(cafile=str(cert_file))
    url = f"https://127.0.0.1:{port}/apis/metrics.k8s.io/v1beta1/nodes"
    try:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            items = orjson.loads(response.read()).get("items") or []
    except (OSError, ssl.SSLError, urllib.error.URLError, orjson.JSONDecodeError):
        return 0
    return len(items)


def write_kubeconfig(path: Path, port: int, cert_file: Path) -> None:
    """A kubeconfig for the standalone API, trusting its self-signed certificate.

    The standalone front does no authentication, but kubectl prompts for a username and password when
    the user entry has no credentials at all; a placeholder token (never checked) keeps it quiet."""
    ca_data = base64.b64encode(cert_file.read_bytes()).decode()
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: kubemetrics-demo\n"
        "  cluster:\n"
        f"    server: https://127.0.0.1:{port}\n"
        f"    certificate-authority-data: {ca_data}\n"
        "users:\n"
        "- name: kubemetrics-demo\n"
        "  user:\n"
        "    token: standalone-front-does-not-check-credentials\n"
        "contexts:\n"
        "- name: kubemetrics-demo\n"
        "  context:\n"
        "    cluster: kubemetrics-demo\n"
        "    user: kubemetrics-demo\n"
        "current-context: kubemetrics-demo\n"
    )


def _busiest_namespace(inventory_file: Path) -> tuple[str, int]:
    """The application namespace with the most pods, and the total pod count."""
    document = orjson.loads(inventory_file.read_bytes())
    pods = document.get("pods") or []
    counts = collections.Counter(pod["namespace"] for pod in pods if pod.get("namespace") != "kube-system")
    namespace = counts.most_common(1)[0][0] if counts else "kube-system"
    return namespace, len(pods)


def run(args: argparse.Namespace) -> int:
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "ready").unlink(missing_ok=True)
    port = args.secure_port or _free_port()
    stop = _StopRequest()
    previous = {signum: signal.signal(signum, stop.handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    children: list[_Child] = []
    try:
        return _run_demo(args, work_dir, port, stop, children)
    except DemoError as err:
        print(f"kubemetrics demo: {err}", file=sys.stderr)
        return 1
    finally:
        stop_children(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_demo(args: argparse.Namespace, work_dir: Path, port: int, stop: _StopRequest, children: list[_Child]) -> int:
    python = [sys.executable, "-m", "kubemetrics"]
    simulator = _start_child(
        "simulator",
        [
            *python,
            "simulate",
            f"--nodes={args.nodes}",
            f"--pods-per-node={args.pods_per_node}",
            f"--seed={args.seed}",
            f"--out-dir={work_dir}",
            f"--port={args.kubelet_port}",
            f"--address-base={args.address_base}",
        ],
        work_dir,
    )
    children.append(simulator)
    print(f"kubemetrics demo: starting {args.nodes} simulated nodes (log: {simulator.log_path})", flush=True)
    if not _wait_for("the simulated kubelets", (work_dir / "ready").exists, children, stop, args.ready_timeout):
        return 0
    serve_argv = [
        *python,
        "serve",
        f"--inventory-file={work_dir / 'inventory.json'}",
        "--standalone-core-api",
        f"--kubelet-certificate-authority={work_dir / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--kubelet-port={args.kubelet_port}",
        f"--metric-resolution={args.metric_resolution}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={work_dir / 'certs'}",
    ]
    if args.workers:
        serve_argv.append(f"--workers={args.workers}")
    front = _start_child("kubemetrics", serve_argv, work_dir)
    children.append(front)
    print(f"kubemetrics demo: starting kubemetrics on https://127.0.0.1:{port} (log: {front.log_path})", flush=True)
    cert_file = work_dir / "certs" / "apiserver.crt"
    if not _wait_for(
        f"https://127.0.0.1:{port}/readyz", lambda: _api_ready(port, cert_file), children, stop, args.ready_timeout
    ):
        return 0
    # Ready means some metrics; a CPU rate needs two scrapes of a node, so give every node up to two
    # resolutions before telling the user to look.
    resolution = parse_duration(args.metric_resolution)
    print("kubemetrics demo: waiting for the first metrics of every node", flush=True)
    try:
        if not _wait_for(
            "metrics of every node",
            lambda: _nodes_with_metrics(port, cert_file) >= args.nodes,
            children,
            stop,
            2 * resolution + 15,
        ):
            return 0
    except DemoTimeout:
        print(
            f"kubemetrics demo: only {_nodes_with_metrics(port, cert_file)} of {args.nodes} nodes have metrics so far",
            flush=True,
        )
    kubeconfig = work_dir / KUBECONFIG_FILE
    write_kubeconfig(kubeconfig, port, cert_file)
    namespace, pods = _busiest_namespace(work_dir / "inventory.json")
    _print_instructions(kubeconfig, args.nodes, pods, namespace, work_dir)
    started = time.monotonic()
    while not stop.requested:
        _check_children(children)
        if args.exit_after and time.monotonic() - started >= args.exit_after:
            break
        time.sleep(0.2)
    print("kubemetrics demo: stopping", flush=True)
    return 0


def _print_instructions(kubeconfig: Path, nodes: int, pods: int, namespace: str, work_dir: Path) -> None:
    k = f"kubectl --kubeconfig {kubeconfig}"
    print(
        f"\nkubemetrics demo is up: {nodes} simulated nodes, {pods} pods.\n"
        f"kubeconfig: {kubeconfig}\n\n"
        "Try:\n"
        f"  {k} top nodes\n"
        f"  {k} top pods -A\n"
        f"  {k} top pods -n {namespace} --containers\n"
        f"  {k} get --raw /apis/metrics.k8s.io/v1beta1/nodes\n\n"
        f"Logs and files: {work_dir}\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
