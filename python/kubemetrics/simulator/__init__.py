"""A fleet of simulated kubelets for demos, tests and benchmarks.

- `model`: the ground truth, pure and deterministic from a seed, the parameters and the time: which
  pods run on which node, every container's CPU rate, start time and working set at any second.
- `catalog`: the workloads the model places on nodes (namespaces, apps, containers, sidecars).
- `summary`: renders `/stats/summary` bodies from the model, shaped exactly like a real kubelet's.
- `resource`: renders `/metrics/resource` (Prometheus text) from the same values.
- `faults`: per-node misbehaviour (latency, HTTP 500, hangs, garbage, truncated bodies, ...).
- `server`: the listeners (one loopback address per node, HTTPS) and the HTTP/1.1 protocol.
- `addresses`: node i ↔ its loopback address.
- `pki`: the CA and each node's serving certificate.
- `inventory`: the inventory file `kubemetrics serve --inventory-file` reads.
- `control`: the run-time control endpoint (faults, truth, request counts).
- `cli`: `kubemetrics simulate`.
"""
