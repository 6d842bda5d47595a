"""Standalone inventory: nodes (and optionally pods) read from a JSON file, reloaded when it changes.

File format (written by `kubemetrics simulate --inventory-file`, or by hand):

    {"nodes": [{"name": "sim-node-0",
                "addresses": [{"type": "InternalIP", "address": "127.1.0.1"},
                              {"type": "Hostname", "address": "sim-node-0"}],
                "kubeletPort": 10250,
                "labels": {"kubernetes.io/hostname": "sim-node-0"},
                "annotations": {},
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}],
     "pods": [{"namespace": "ns-1", "name": "web-0", "labels": {"app": "web"}, "nodeName": "sim-node-0"}]}

"pods" may be omitted: every pod the kubelets report is then served (with no labels).
"""
