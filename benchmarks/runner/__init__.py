"""The benchmark scenario runner: a simulated cluster, the collector under test, an API load modelled on
the HPA and `kubectl top`, and the collector's own CPU, memory, kubelet traffic, freshness and API
latency measured over whole resolutions, side by side with metrics-server (`make bench`).

Stages, one module each: `scenarios` (what to run), `children` (processes, pinning, stopping),
`watch` (failing at once when a control-plane or simulator process exits), `procfs` (CPU seconds and
memory of a process tree), `promtext` (self-metrics), `kubelets` (the simulator and kubelet traffic),
`cluster` (the control plane with the simulated Nodes and Pods),
`collectors` (how kubemetrics and metrics-server are started and read), `loadgen` (the API load),
`measure` (one collector over one window), `analysis` (figures, ratios, targets), `report` (JSON,
Markdown, plots), `progress` (the progress line), `run` (a scenario end to end), `__main__` (the CLI).
"""
