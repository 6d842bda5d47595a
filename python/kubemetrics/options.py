"""Command-line flags, named, defaulted and validated as metrics-server names them
(cmd/metrics-server/app/options), plus kubemetrics' own. Shared by `serve` and `worker`."""

from __future__ import annotations

import argparse
import math
import os
import re
from dataclasses import dataclass, field

DEFAULT_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
KNOWN_ADDRESS_TYPES = frozenset(DEFAULT_ADDRESS_TYPES)
SUMMARY_PATH = "/stats/summary?only_cpu_and_memory=true"
RESOURCE_PATH = "/metrics/resource"
KUBELET_ENDPOINTS = ("auto", "resource", "summary")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def usable_cpus(cgroup_cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota. In a pod,
    os.cpu_count() is every core of the node; one worker per core must follow the pod's limit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open(cgroup_cpu_max) as limits:
            quota, period = limits.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


class OptionsError(ValueError):
    """Flags that cannot work together; the message says which and why."""


def parse_duration(text: str) -> float:
    """Go time.ParseDuration ("15s", "1m30s", "500ms") in seconds."""
    body = text.strip()
    sign = 1.0
    if body[:1] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or not body:
        raise argparse.ArgumentTypeError(f'time: invalid duration "{text}"')
    return sign * total


def _address_types(text: str) -> tuple[str, ...]:
    types = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [t for t in types if t not in KNOWN_ADDRESS_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown address type(s) {unknown}; expected some of {', '.join(DEFAULT_ADDRESS_TYPES)}"
        )
    return types


@dataclass(frozen=True, slots=True)
class KubeletOptions:
    """How workers reach kubelets (metrics-server's kubelet_client.go flags)."""

    port: int = 10250
    use_node_status_port: bool = False
    preferred_address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    insecure_tls: bool = False
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    bearer_token_file: str = ""
    request_timeout_seconds: float = 10.0
    max_body_bytes: int = 64 * 1024 * 1024
    endpoint: str = "auto"

    def validate(self) -> None:
        if self.request_timeout_seconds <= 0:
            raise OptionsError("kubelet-request-timeout should be positive")
        if self.insecure_tls and self.certificate_authority:
            raise OptionsError("cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls")
        if bool(self.client_certificate) != bool(self.client_key):
            raise OptionsError("need both --kubelet-client-certificate and --kubelet-client-key, or neither")
        if self.endpoint not in KUBELET_ENDPOINTS:
            raise OptionsError(f"--kubelet-endpoint should be one of {', '.join(KUBELET_ENDPOINTS)}")
        if self.max_body_bytes <= 0:
            raise OptionsError("--kubelet-max-body-bytes should be positive")


DEFAULT_ALWAYS_ALLOW_PATHS = ("/healthz", "/readyz", "/livez")


@dataclass(frozen=True, slots=True)
class DelegatedAuthOptions:
    """The generic apiserver's DelegatingAuthenticationOptions/DelegatingAuthorizationOptions flags.
    Empty CA files and header lists mean "take it from the extension-apiserver-authentication
    ConfigMap" (api/auth.py)."""

    authentication_kubeconfig: str = ""
    authorization_kubeconfig: str = ""
    authentication_skip_lookup: bool = False
    authentication_tolerate_lookup_failure: bool = False
    authentication_token_webhook_cache_ttl_seconds: float = 10.0
    client_ca_file: str = ""
    requestheader_client_ca_file: str = ""
    requestheader_allowed_names: tuple[str, ...] = ()
    requestheader_username_headers: tuple[str, ...] = ("x-remote-user",)
    requestheader_group_headers: tuple[str, ...] = ("x-remote-group",)
    requestheader_extra_headers_prefix: tuple[str, ...] = ("x-remote-extra-",)
    authorization_always_allow_paths: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW_PATHS
    authorization_webhook_cache_authorized_ttl_seconds: float = 10.0
    authorization_webhook_cache_unauthorized_ttl_seconds: float = 10.0


def _string_list(text: str) -> tuple[str, ...]:
    """pflag's StringSlice: comma-separated, empty string = empty list."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_delegated_auth_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("delegated authentication and authorization")
    group.add_argument(
        "--authentication-kubeconfig",
        default="",
        help="kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
        "tokenreviews.authentication.k8s.io. (default: in-cluster; with neither, authentication and "
        "authorization are off: standalone mode)",
    )
    group.add_argument(
        "--authorization-kubeconfig",
        default="",
        help="kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
        "subjectaccessreviews.authorization.k8s.io. (default: in-cluster)",
    )
    group.add_argument(
        "--authentication-skip-lookup",
        action="store_true",
        help="If false, the authentication-kubeconfig will be used to lookup missing authentication "
        "configuration from the cluster.",
    )
    group.add_argument(
        "--authentication-tolerate-lookup-failure",
        action="store_true",
        help="If true, failures to look up missing authentication configuration from the cluster are not "
        "considered fatal. Note that this can result in authentication that treats all requests as anonymous.",
    )
    group.add_argument(
        "--authentication-token-webhook-cache-ttl",
        type=parse_duration,
        default=10.0,
        help="The duration to cache responses from the webhook token authenticator. (default 10s)",
    )
    group.add_argument(
        "--client-ca-file",
        default="",
        help="If set, any request presenting a client certificate signed by one of the authorities in the "
        "client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate.",
    )
    group.add_argument(
        "--requestheader-client-ca-file",
        default="",
        help="Root certificate bundle to use to verify client certificates on incoming requests before trusting "
        "usernames in headers specified by --requestheader-username-headers.",
    )
    group.add_argument(
        "--requestheader-allowed-names",
        type=_string_list,
        default=(),
        help="List of client certificate common names to allow to provide usernames in headers specified by "
        "--requestheader-username-headers. If empty, any client certificate validated by the authorities in "
        "--requestheader-client-ca-file is allowed.",
    )
    group.add_argument(
        "--requestheader-username-headers",
        type=_string_list,
        default=("x-remote-user",),
        help="List of request headers to inspect for usernames. X-Remote-User is common. (default [x-remote-user])",
    )
    group.add_argument(
        "--requestheader-group-headers",
        type=_string_list,
        default=("x-remote-group",),
        help="List of request headers to inspect for groups. X-Remote-Group is suggested. (default [x-remote-group])",
    )
    group.add_argument(
        "--requestheader-extra-headers-prefix",
        type=_string_list,
        default=("x-remote-extra-",),
        help="List of request header prefixes to inspect. X-Remote-Extra- is suggested. (default [x-remote-extra-])",
    )
    group.add_argument(
        "--authorization-always-allow-paths",
        type=_string_list,
        default=DEFAULT_ALWAYS_ALLOW_PATHS,
        help="A list of HTTP paths to skip during authorization, i.e. these are authorized without contacting "
        "the 'core' kubernetes server. Setting it replaces the default. (default [/healthz,/readyz,/livez])",
    )
    group.add_argument(
        "--authorization-webhook-cache-authorized-ttl",
        type=parse_duration,
        default=10.0,
        help="The duration to cache 'authorized' responses from the webhook authorizer. (default 10s)",
    )
    group.add_argument(
        "--authorization-webhook-cache-unauthorized-ttl",
        type=parse_duration,
        default=10.0,
        help="The duration to cache 'unauthorized' responses from the webhook authorizer. (default 10s)",
    )


def delegated_auth_options_from(args: argparse.Namespace) -> DelegatedAuthOptions:
    return DelegatedAuthOptions(
        authentication_kubeconfig=args.authentication_kubeconfig,
        authorization_kubeconfig=args.authorization_kubeconfig,
        authentication_skip_lookup=args.authentication_skip_lookup,
        authentication_tolerate_lookup_failure=args.authentication_tolerate_lookup_failure,
        authentication_token_webhook_cache_ttl_seconds=args.authentication_token_webhook_cache_ttl,
        client_ca_file=args.client_ca_file,
        requestheader_client_ca_file=args.requestheader_client_ca_file,
        requestheader_allowed_names=tuple(args.requestheader_allowed_names),
        requestheader_username_headers=tuple(args.requestheader_username_headers),
        requestheader_group_headers=tuple(args.requestheader_group_headers),
        requestheader_extra_headers_prefix=tuple(args.requestheader_extra_headers_prefix),
        authorization_always_allow_paths=tuple(args.authorization_always_allow_paths),
        authorization_webhook_cache_authorized_ttl_seconds=args.authorization_webhook_cache_authorized_ttl,
        authorization_webhook_cache_unauthorized_ttl_seconds=args.authorization_webhook_cache_unauthorized_ttl,
    )


@dataclass(frozen=True, slots=True)
class ServeOptions:
    metric_resolution_seconds: float = 60.0
    kubelet: KubeletOptions = field(default_factory=KubeletOptions)
    workers: int = 0  # 0 = one per core
    secure_port: int = 443
    bind_address: str = "0.0.0.0"
    cert_dir: str = "apiserver.local.config/certificates"
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    inventory_file: str = ""
    kubeconfig: str = ""
    node_selector: str = ""
    standalone_core_api: bool = False
    runtime_dir: str = ""
    # Consecutive failed scrapes of a node during which its last good sample stays served.
    tolerated_scrape_failures: int = 1
    verbosity: int = 0
    auth: DelegatedAuthOptions = field(default_factory=DelegatedAuthOptions)

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else usable_cpus()

    def validate(self) -> None:
        self.kubelet.validate()
        if self.metric_resolution_seconds < 10:
            raise OptionsError("metric-resolution should be a time duration at least 10s")
        if self.metric_resolution_seconds * 9 / 10 < self.kubelet.request_timeout_seconds:
            raise OptionsError(
                f"metric-resolution should be larger than kubelet-request-timeout / 0.9 "
                f"({self.kubelet.request_timeout_seconds:g}s / 0.9), got {self.metric_resolution_seconds:g}s"
            )
        if bool(self.tls_cert_file) != bool(self.tls_private_key_file):
            raise OptionsError("need both --tls-cert-file and --tls-private-key-file, or neither")
        if not (self.inventory_file or self.kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST")):
            raise OptionsError(
                "no inventory: pass --kubeconfig, run in a pod (KUBERNETES_SERVICE_HOST set), "
                "or pass --inventory-file (standalone mode)"
            )
        if self.node_selector:
            # Imported here: kubemetrics.api imports this module.
            from kubemetrics.api.label_selector import parse_label_selector
            from kubemetrics.api.status import ApiStatusError

            try:
                parse_label_selector(self.node_selector)
            except ApiStatusError as err:
                raise OptionsError(f"--node-selector {self.node_selector!r}: {err.message}") from err
        if self.tolerated_scrape_failures < 0:
            raise OptionsError("--tolerated-scrape-failures should be 0 or positive")
        if self.workers < 0:
            raise OptionsError("--workers should be 0 (one per core) or positive")


def add_kubelet_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("kubelet client")
    group.add_argument("--kubelet-port", type=int, default=10250, help="The port to use to connect to Kubelets.")
    group.add_argument(
        "--kubelet-use-node-status-port",
        action="store_true",
        help="Use the port in the node status. Takes precedence over --kubelet-port flag.",
    )
    group.add_argument(
        "--kubelet-preferred-address-types",
        type=_address_types,
        default=DEFAULT_ADDRESS_TYPES,
        help="The priority of node address types to use when determining which address to use to connect "
        "to a particular node (default [Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP])",
    )
    group.add_argument(
        "--kubelet-insecure-tls",
        action="store_true",
        help="Do not verify CA of serving certificates presented by Kubelets. For testing purposes only.",
    )
    group.add_argument(
        "--kubelet-certificate-authority",
        default="",
        help="Path to the CA to use to validate the Kubelet's serving certificates.",
    )
    group.add_argument("--kubelet-client-certificate", default="", help="Path to a client cert file for TLS.")
    group.add_argument("--kubelet-client-key", default="", help="Path to a client key file for TLS.")
    group.add_argument(
        "--kubelet-bearer-token-file",
        default="",
        help="File holding a bearer token sent to kubelets (re-read when it changes).",
    )
    group.add_argument(
        "--kubelet-request-timeout",
        type=parse_duration,
        default=10.0,
        help="The length of time to wait before giving up on a single request to Kubelet. Non-zero values "
        "should contain a corresponding time unit (e.g. 1s, 2m, 3h). (default 10s)",
    )
    group.add_argument(
        "--kubelet-endpoint",
        choices=KUBELET_ENDPOINTS,
        default="auto",
        help="Kubelet endpoint to scrape: resource (/metrics/resource, as metrics-server >= 0.6), summary "
        "(/stats/summary?only_cpu_and_memory=true, as metrics-server 0.5), or auto (resource, falling back per "
        "node to summary when the kubelet answers 404). The node annotation metrics.k8s.io/resource-metrics-path "
        "overrides the resource path. (default auto)",
    )
    group.add_argument(
        "--kubelet-max-body-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="Refuse kubelet responses larger than this many bytes (the node's sample is lost, counted and logged).",
    )


def kubelet_options_from(args: argparse.Namespace) -> KubeletOptions:
    return KubeletOptions(
        port=args.kubelet_port,
        use_node_status_port=args.kubelet_use_node_status_port,
        preferred_address_types=tuple(args.kubelet_preferred_address_types),
        insecure_tls=args.kubelet_insecure_tls,
        certificate_authority=args.kubelet_certificate_authority,
        client_certificate=args.kubelet_client_certificate,
        client_key=args.kubelet_client_key,
        bearer_token_file=args.kubelet_bearer_token_file,
        request_timeout_seconds=args.kubelet_request_timeout,
        max_body_bytes=args.kubelet_max_body_bytes,
        endpoint=args.kubelet_endpoint,
    )


def kubelet_flags_argv(options: KubeletOptions) -> list[str]:
    """The flags that reproduce `options` (the supervisor passes them on to each worker)."""
    argv = [
        f"--kubelet-port={options.port}",
        f"--kubelet-preferred-address-types={','.join(options.preferred_address_types)}",
        f"--kubelet-request-timeout={options.request_timeout_seconds}s",
        f"--kubelet-max-body-bytes={options.max_body_bytes}",
        f"--kubelet-endpoint={options.endpoint}",
    ]
    if options.use_node_status_port:
        argv.append("--kubelet-use-node-status-port")
    if options.insecure_tls:
        argv.append("--kubelet-insecure-tls")
    for flag, value in (
        ("--kubelet-certificate-authority", options.certificate_authority),
        ("--kubelet-client-certificate", options.client_certificate),
        ("--kubelet-client-key", options.client_key),
        ("--kubelet-bearer-token-file", options.bearer_token_file),
    ):
        if value:
            argv.append(f"{flag}={value}")
    return argv


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric-resolution",
        type=parse_duration,
        default=60.0,
        help="The resolution at which metrics-server will retain metrics, must set value at least 10s. (default 1m0s)",
    )
    parser.add_argument("--workers", type=int, default=0, help="Scraping worker processes (default: one per core).")
    parser.add_argument(
        "--tolerated-scrape-failures",
        type=int,
        default=1,
        help="Consecutive failed scrapes of a node during which its last good sample is still served; 0 hides "
        "the node at its first failure, as metrics-server does (a gap of about two resolutions). (default 1)",
    )
    serving = parser.add_argument_group("secure serving")
    serving.add_argument("--secure-port", type=int, default=443, help="The port on which to serve HTTPS. (default 443)")
    serving.add_argument(
        "--bind-address", default="0.0.0.0", help="The IP address on which to listen for the --secure-port port."
    )
    serving.add_argument(
        "--cert-dir",
        default="apiserver.local.config/certificates",
        help="The directory where the TLS certs are located. If --tls-cert-file and --tls-private-key-file "
        "are provided, this flag will be ignored.",
    )
    serving.add_argument("--tls-cert-file", default="", help="File containing the default x509 Certificate for HTTPS.")
    serving.add_argument(
        "--tls-private-key-file",
        default="",
        help="File containing the default x509 private key matching --tls-cert-file.",
    )
    add_kubelet_flags(parser)
    add_delegated_auth_flags(parser)
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument(
        "--kubeconfig",
        default="",
        help="The path to the kubeconfig used to connect to the Kubernetes API server and the Kubelets "
        "(defaults to in-cluster config)",
    )
    cluster.add_argument(
        "-l",
        "--node-selector",
        default="",
        help="Selector (label query) to filter on, not including uninitialized ones, supports '=', '==', "
        "and '!='.(e.g. -l key1=value1,key2=value2).",
    )
    standalone = parser.add_argument_group("standalone mode")
    standalone.add_argument(
        "--inventory-file",
        default="",
        help="JSON file listing nodes (and optionally pods); see kubemetrics.inventory.static.",
    )
    standalone.add_argument(
        "--standalone-core-api",
        action="store_true",
        help="Also serve a minimal read-only /version, /api, /api/v1/nodes so kubectl works without a "
        "kube-apiserver (demo only).",
    )
    parser.add_argument(
        "--runtime-dir", default="", help="Directory for the worker gRPC socket (default: a new temporary directory)."
    )
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="number for the log level verbosity")


def serve_options_from(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        metric_resolution_seconds=args.metric_resolution,
        kubelet=kubelet_options_from(args),
        workers=args.workers,
        tolerated_scrape_failures=args.tolerated_scrape_failures,
        secure_port=args.secure_port,
        bind_address=args.bind_address,
        cert_dir=args.cert_dir,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        inventory_file=args.inventory_file,
        kubeconfig=args.kubeconfig,
        node_selector=args.node_selector,
        standalone_core_api=args.standalone_core_api,
        runtime_dir=args.runtime_dir,
        verbosity=args.verbosity,
        auth=delegated_auth_options_from(args),
    )


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What the supervisor tells a worker process on its command line."""

    front_address: str  # gRPC target, e.g. "unix:///tmp/kubemetrics-x/ingest.sock"
    worker_id: str
    metric_resolution_seconds: float
    kubelet: KubeletOptions
    verbosity: int = 0


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--front-address", required=True, help="gRPC address of the front's ingest service.")
    parser.add_argument("--worker-id", required=True, help="Stable identity of this worker (the planner's shard key).")
    parser.add_argument("--metric-resolution", type=parse_duration, default=60.0, help="Scrape interval per node.")
    add_kubelet_flags(parser)
    parser.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="number for the log level verbosity")


def worker_options_from(args: argparse.Namespace) -> WorkerOptions:
    return WorkerOptions(
        front_address=args.front_address,
        worker_id=args.worker_id,
        metric_resolution_seconds=args.metric_resolution,
        kubelet=kubelet_options_from(args),
        verbosity=args.verbosity,
    )
