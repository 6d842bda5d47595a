"""kubemetrics: a drop-in replacement for the Kubernetes metrics-server, built for very large clusters."""

__version__ = "0.1.0"
