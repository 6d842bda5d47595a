"""The simulator's run-time control endpoint (plain HTTP on 127.0.0.1), for tests and experiments.

- `GET /faults` → `{"sim-node-3": "http500", ...}`
- `PUT /faults` with `{"sim-node-3": "latency:2", "sim-node-4": null}` sets (or clears, with null)
  faults and returns the full map; `DELETE /faults` clears them all.
- `GET /truth?node=NAME[&t=UNIX_SECONDS]` → the model's values for the node as its kubelet reports
  them at wall second t (default: now): rates, cumulative counters, working sets, sample times.
- `GET /requests` → requests served per node and path.
- `GET /response-bytes` → bytes written per node and path (status line, headers, chunk framing and
  body as sent, gzip-compressed when the client accepted it; before TLS), same shape as /requests.
- `GET /scrapes[?node=NAME&node=…]` → the last scrapes answered per node, oldest first:
  `{"sim-node-0": [{"time", "path", "user_agent", "status", "sample_time"}, …]}`.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from kubemetrics.simulator.faults import Fault, FaultSpecError, describe, parse_fault
from kubemetrics.simulator.server import Fleet, FleetError

_FLEET = web.AppKey("fleet", Fleet)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


async def _get_faults(request: web.Request) -> web.Response:
    return _json(describe(request.app[_FLEET].faults()))


async def _put_faults(request: web.Request) -> web.Response:
    fleet = request.app[_FLEET]
    try:
        changes = orjson.loads(await request.read())
    except orjson.JSONDecodeError as err:
        return _error(400, f"body is not JSON: {err}")
    if not isinstance(changes, dict):
        return _error(400, 'expected an object such as {"sim-node-3": "http500", "sim-node-4": null}')
    parsed: dict[str, Fault | None] = {}
    for node, spec in changes.items():
        try:
            fleet.kubelet(node)
        except KeyError as err:
            return _error(404, str(err.args[0]))
        if spec is None:
            parsed[node] = None
            continue
        if not isinstance(spec, str):
            return _error(400, f'fault for {node}: expected a string such as "latency:2" or null')
        try:
            parsed[node] = parse_fault(spec)
        except FaultSpecError as err:
            return _error(400, f"fault for {node}: {err}")
    for node, fault in parsed.items():
        try:
            await fleet.set_fault(node, fault)
        except FleetError as err:
            return _error(409, str(err))
    return _json(describe(fleet.faults()))


async def _delete_faults(request: web.Request) -> web.Response:
    fleet = request.app[_FLEET]
    for node in list(fleet.faults()):
        await fleet.set_fault(node, None)
    return _json({})


async def _get_truth(request: web.Request) -> web.Response:
    fleet = request.app[_FLEET]
    node = request.query.get("node", "")
    try:
        t = int(request.query.get("t", fleet.now()))
    except ValueError:
        return _error(400, f"t should be Unix seconds, got {request.query.get('t')!r}")
    try:
        truth = fleet.model.truth_for(node, t)
    except KeyError as err:
        return _error(404, str(err.args[0]))
    return _json(truth)


async def _get_requests(request: web.Request) -> web.Response:
    return _json(request.app[_FLEET].request_counts())


async def _get_response_bytes(request: web.Request) -> web.Response:
    return _json(request.app[_FLEET].response_byte_counts())


async def _get_scrapes(request: web.Request) -> web.Response:
    names = request.query.getall("node", []) or None
    try:
        log = request.app[_FLEET].scrape_log(names)
    except KeyError as err:
        return _error(404, str(err.args[0]))
    return _json(log)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def control_app(fleet: Fleet) -> web.Application:
    app = web.Application()
    app[_FLEET] = fleet
    app.router.add_get("/faults", _get_faults)
    app.router.add_put("/faults", _put_faults)
    app.router.add_delete("/faults", _delete_faults)
    app.router.add_get("/truth", _get_truth)
    app.router.add_get("/requests", _get_requests)
    app.router.add_get("/response-bytes", _get_response_bytes)
    app.router.add_get("/scrapes", _get_scrapes)
    app.router.add_get("/healthz", _healthz)
    return app


async def start_control(fleet: Fleet, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the control endpoint; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(control_app(fleet), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
