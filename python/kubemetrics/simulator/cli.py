"""`kubemetrics simulate`: run the fleet until SIGTERM/SIGINT.

Files in --out-dir: ca.crt (+ ca.key) to trust the kubelets, kubelet-serving/ (their certificates),
inventory.json (for `kubemetrics serve --inventory-file`), simulation.json (the model's parameters,
to rebuild the ground truth with kubemetrics.simulator.model), and `ready` (JSON: pid, control port,
...) once every listener is up; `ready` is removed on exit.

With --kubeconfig the fleet runs in hollow mode (kubemetrics.simulator.hollow): its nodes register with
that cluster's API server and run the pods bound to them; they serve those pods only (--pods-per-node
defaults to 0) and `ready` is written once the nodes are registered and the pods listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import resource
import signal
import ssl
import sys
import time
from pathlib import Path

import orjson

from kubemetrics import logs
from kubemetrics.inventory.kubeconfig import KubeconfigError, load_kubeconfig
from kubemetrics.options import parse_duration
from kubemetrics.simulator.addresses import DEFAULT_BASE, node_address
from kubemetrics.simulator.control import start_control
from kubemetrics.simulator.faults import (
    Fault,
    FaultSpecError,
    initial_faults,
    parse_fault_fraction,
    parse_node_fault,
)
from kubemetrics.simulator.hollow import HollowKubelets, HollowSettings
from kubemetrics.simulator.inventory import write_atomically
from kubemetrics.simulator.kubeapi import ApiError, KubeClient
from kubemetrics.simulator.model import Model, SimulationParameters
from kubemetrics.simulator.server import Fleet, FleetError, FleetSettings

log = logging.getLogger("kubemetrics.simulator")

READY_FILE = "ready"
PARAMETERS_FILE = "simulation.json"


def _whole_seconds(text: str) -> int:
    return round(parse_duration(text))


def _loopback(text: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if address not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise argparse.ArgumentTypeError(f"{text} is not a loopback address (127.0.0.0/8)")
    return address


def add_flags(parser: argparse.ArgumentParser) -> None:
    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--nodes", type=int, default=10, help="Simulated nodes (default 10).")
    fleet.add_argument(
        "--pods-per-node",
        type=int,
        default=None,
        help="Pods of the model per node (default 30; 0 in hollow mode, which serves the API's pods).",
    )
    fleet.add_argument(
        "--containers-per-pod",
        type=int,
        default=0,
        metavar="N",
        help="Every model pod runs exactly N containers (its workload's first ones, padded with sidecar-1, "
        "sidecar-2, ...) and no init container (default 0: each workload's own 1-3, a third with an init "
        "container). Pods from the API in hollow mode keep their own.",
    )
    fleet.add_argument("--seed", type=int, default=1, help="Seed of everything random (default 1).")
    fleet.add_argument("--out-dir", required=True, help="Directory for ca.crt, inventory.json, ready, ...")
    fleet.add_argument("--port", type=int, default=10250, help="Kubelet port on every node address (default 10250).")
    fleet.add_argument(
        "--address-base",
        type=_loopback,
        default=DEFAULT_BASE,
        help="Node i listens on the i-th loopback address after this one, skipping .0 and .255 (default 127.1.0.0).",
    )
    fleet.add_argument(
        "--listen-nodes",
        type=_index_range,
        default=None,
        metavar="FIRST-LAST",
        help="Listen only for the nodes with these indexes (from 0); the others are modelled but served by "
        "another simulator process started with the same settings (default: every node).",
    )
    fleet.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="Port of the control endpoint on 127.0.0.1 (default: any free port).",
    )
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--housekeeping-interval",
        type=_whole_seconds,
        default=10,
        help="How often each cgroup's stats are sampled, as cAdvisor's housekeeping (default 10s).",
    )
    behaviour.add_argument(
        "--restart-interval",
        type=_whole_seconds,
        default=600,
        help="Restarting containers restart this often (default 10m; 0: never).",
    )
    behaviour.add_argument(
        "--restart-fraction", type=float, default=0.01, help="Share of containers that restart (default 0.01)."
    )
    behaviour.add_argument(
        "--churn-interval",
        type=_whole_seconds,
        default=600,
        help="Churning pods are replaced this often (default 10m; 0: never).",
    )
    behaviour.add_argument(
        "--churn-fraction", type=float, default=0.02, help="Share of pods that churn (default 0.02)."
    )
    behaviour.add_argument(
        "--no-psi", action="store_true", help="Leave out pressure-stall (psi/io) sections, as kubelets before 1.33."
    )
    behaviour.add_argument(
        "--steady-memory",
        action="store_true",
        help="Working sets stay at their base instead of swinging slowly, so every sample of an object reads "
        "the same (for comparing collectors that scrape at different seconds).",
    )
    behaviour.add_argument(
        "--origin",
        type=int,
        default=0,
        help="Unix second the simulation starts at (default: now); fixes the whole run.",
    )
    behaviour.add_argument(
        "--inventory-min-interval",
        type=parse_duration,
        default=5.0,
        help="Shortest time between two rewrites of inventory.json when pods churn (default 5s).",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NODE=KIND[:ARG]",
        help="Make a node misbehave: latency:SECONDS, http500, hang, garbage, truncated, disconnect, down. Repeatable.",
    )
    faults.add_argument(
        "--fault-fraction",
        action="append",
        default=[],
        metavar="KIND[:ARG]=FRACTION",
        help="Give a fault to this share of the nodes, drawn by seed, e.g. http500=0.01. Repeatable.",
    )
    hollow = parser.add_argument_group("hollow mode (join a real cluster)")
    hollow.add_argument(
        "--kubeconfig",
        default=None,
        metavar="PATH",
        help="Join the cluster of this kubeconfig: register Nodes, bind Pending pods, run the pods bound to them.",
    )
    hollow.add_argument(
        "--register-nodes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Create (or take over) a Node per simulated node and keep it Ready (default: on in hollow mode).",
    )
    hollow.add_argument(
        "--deregister-on-exit", action="store_true", help="Delete the simulated nodes' Node objects on exit."
    )
    hollow.add_argument(
        "--node-heartbeat-interval",
        type=parse_duration,
        default=30.0,
        help="How often Ready is re-posted on every Node (default 30s).",
    )
    hollow.add_argument(
        "--hollow-workers",
        type=int,
        default=4,
        help="Pods reconciled at once: binds and status writes in flight (default 4).",
    )
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="Log verbosity (0-2).")


@dataclasses.dataclass(frozen=True, slots=True)
class SimulateConfig:
    params: SimulationParameters
    settings: FleetSettings
    control_port: int
    # Hollow mode: the kubeconfig of the cluster to join, and how.
    kubeconfig: Path | None = None
    hollow: HollowSettings | None = None


def config_from(args: argparse.Namespace, now: int) -> SimulateConfig:
    hollow_mode = args.kubeconfig is not None
    pods_per_node = args.pods_per_node
    if pods_per_node is None:
        pods_per_node = 0 if hollow_mode else 30
    params = SimulationParameters(
        nodes=args.nodes,
        pods_per_node=pods_per_node,
        seed=args.seed,
        origin=args.origin or now,
        housekeeping_interval=args.housekeeping_interval,
        restart_interval=args.restart_interval,
        restart_fraction=args.restart_fraction,
        churn_interval=args.churn_interval,
        churn_fraction=args.churn_fraction,
        psi=not args.no_psi,
        steady_memory=args.steady_memory,
        containers_per_pod=args.containers_per_pod,
    )
    params.validate()
    if args.listen_nodes is not None and args.listen_nodes[0] >= params.nodes:
        first, last = args.listen_nodes
        raise ValueError(f"--listen-nodes={first}-{last} starts past the last node (--nodes={params.nodes})")
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port should be 1-65535, got {args.port}")
    names = [f"{params.node_name_prefix}{i}" for i in range(params.nodes)]
    explicit = [parse_node_fault(text) for text in args.fault]
    fractions = [parse_fault_fraction(text) for text in args.fault_fraction]
    faults: dict[str, Fault] = initial_faults(params.seed, names, explicit, fractions)
    settings = FleetSettings(
        out_dir=Path(args.out_dir).resolve(),
        address_base=args.address_base,
        port=args.port,
        inventory_min_interval_seconds=args.inventory_min_interval,
        initial_faults=faults,
        listen_range=args.listen_nodes,
    )
    hollow: HollowSettings | None = None
    if hollow_mode:
        if args.node_heartbeat_interval <= 0:
            raise ValueError(f"--node-heartbeat-interval should be positive, got {args.node_heartbeat_interval}")
        if args.hollow_workers < 1:
            raise ValueError(f"--hollow-workers should be at least 1, got {args.hollow_workers}")
        hollow = HollowSettings(
            register_nodes=args.register_nodes is not False,
            deregister_on_exit=args.deregister_on_exit,
            heartbeat_interval_seconds=args.node_heartbeat_interval,
            workers=args.hollow_workers,
        )
    elif args.register_nodes or args.deregister_on_exit:
        raise ValueError("--register-nodes and --deregister-on-exit need --kubeconfig (hollow mode)")
    return SimulateConfig(
        params=params,
        settings=settings,
        control_port=args.control_port,
        kubeconfig=Path(args.kubeconfig) if hollow_mode else None,
        hollow=hollow,
    )


def _index_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST node indexes, got {text!r}") from None
    if not sep or low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST node indexes with 0 <= FIRST <= LAST, got {text!r}")
    return low, high


def _raise_open_file_limit(needed: int) -> None:
    """Every node's listener and every client connection is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        log.warning("open-file limit %d is below the %d this fleet may need; raise `ulimit -n`", target, needed)


def run(args: argparse.Namespace) -> int:
    logs.configure(logging.DEBUG if args.verbosity >= 2 else logging.INFO if args.verbosity >= 1 else logging.WARNING)
    try:
        config = config_from(args, int(time.time()))
    except (ValueError, FaultSpecError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    import uvloop

    result: int = uvloop.run(_simulate(config))
    return result


async def _simulate(config: SimulateConfig) -> int:
    settings = config.settings
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    ready_file = settings.out_dir / READY_FILE
    ready_file.unlink(missing_ok=True)
    listening = config.params.nodes
    if config.settings.listen_range is not None:
        first, last = config.settings.listen_range
        listening = max(0, min(last, config.params.nodes - 1) - first + 1)
    _raise_open_file_limit(listening * 3 + 256)

    model = Model(config.params)
    fleet = Fleet(model, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    hollow: HollowKubelets | None = None
    if config.kubeconfig is not None and config.hollow is not None:
        try:
            connection = load_kubeconfig(config.kubeconfig)
            client = KubeClient(connection)
        except (KubeconfigError, ssl.SSLError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 2
        hollow = HollowKubelets(fleet, client, config.hollow)
    try:
        await fleet.start()
    except FleetError as err:
        print(f"Error: {err}", file=sys.stderr)
        if hollow is not None:
            await hollow.client.close()
        return 1
    runner = None
    try:
        if hollow is not None:
            try:
                await hollow.start()
            except ApiError as err:
                print(f"Error: joining the cluster at {hollow.client.connection.server}: {err}", file=sys.stderr)
                return 1
        runner, control_port = await start_control(fleet, "127.0.0.1", config.control_port)
        write_atomically(
            settings.out_dir / PARAMETERS_FILE,
            orjson.dumps(dataclasses.asdict(config.params), option=orjson.OPT_INDENT_2),
        )
        ready = {
            "pid": os.getpid(),
            "nodes": config.params.nodes,
            "addressBase": str(settings.address_base),
            "firstAddress": str(node_address(settings.address_base, 0)),
            "lastAddress": str(node_address(settings.address_base, config.params.nodes - 1)),
            "port": settings.port,
            "controlUrl": f"http://127.0.0.1:{control_port}",
            "caFile": str(fleet.ca_file),
            "inventoryFile": str(fleet.inventory_file),
            "parametersFile": str(settings.out_dir / PARAMETERS_FILE),
            "origin": config.params.origin,
            "seed": config.params.seed,
            "listenNodes": list(settings.listen_range) if settings.listen_range else None,
        }
        if hollow is not None:
            ready["apiServer"] = hollow.client.connection.server
            ready["nodesRegistered"] = hollow.settings.register_nodes
        write_atomically(ready_file, orjson.dumps(ready, option=orjson.OPT_INDENT_2))
        print(_summary_line(fleet, control_port), flush=True)
        await stop.wait()
    finally:
        ready_file.unlink(missing_ok=True)
        if runner is not None:
            await runner.cleanup()
        if hollow is not None:
            await hollow.stop()
        await fleet.stop()
    return 0


def _summary_line(fleet: Fleet, control_port: int) -> str:
    model = fleet.model
    now = fleet.now()
    pods = containers = 0
    for node in model.nodes():
        for pod in model.pods_at(node.index, now):
            pods += 1
            containers += sum(1 for start in pod.first_starts if start <= now)
    first = fleet.kubelets[0].address
    last = fleet.kubelets[-1].address
    faults = fleet.faults()
    fault_text = f", {len(faults)} with faults" if faults else ""
    return (
        f"kubemetrics simulate: {model.params.nodes} nodes{fault_text} ({pods} pods, {containers} containers) "
        f"on {first}..{last} port {fleet.settings.port}; inventory {fleet.inventory_file}; CA {fleet.ca_file}; "
        f"control http://127.0.0.1:{control_port}"
    )
