"""Command-line flags: every flag metrics-server v0.9 accepts, under its name, with its default and its
validation (cmd/metrics-server/app/options and the k8s.io/apiserver options it embeds), plus
kubemetrics' own. Shared by `serve` and `worker`.

Flags are parsed as pflag parses them: booleans take `--flag`, `--flag=true` or `--flag=false`, string
lists are comma-separated and a repeated list flag adds to the first, abbreviations are not accepted.
metrics-server flags that have no meaning in kubemetrics (audit, profiling, HTTP/2 tuning, API
Priority and Fairness...) are accepted and ignored (`COMPAT_FLAGS`), so an existing metrics-server
Deployment starts unchanged; their values are still checked as metrics-server checks them, and one
warning line per such flag given a value that would change something is logged at start.
`docs/flags.md` is generated from this module (`flags_markdown`).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
KNOWN_ADDRESS_TYPES = frozenset(DEFAULT_ADDRESS_TYPES)
SUMMARY_PATH = "/stats/summary?only_cpu_and_memory=true"
RESOURCE_PATH = "/metrics/resource"
KUBELET_ENDPOINTS = ("auto", "resource", "summary")
# metrics-server documents itself as tested up to 5,000 nodes; up to there its per-node self-metrics are
# kept exactly (see selfmetrics.py for what happens above).
DEFAULT_SELF_METRICS_MAX_NODES = 5000

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?")

# crypto/tls names accepted by --tls-cipher-suites (k8s.io/component-base cli/flag ciphersuites_flag.go:
# Go's secure and insecure suites plus two legacy aliases) -> the OpenSSL name of the same suite. TLS 1.3
# suites map to None: neither Go nor OpenSSL lets a server narrow them, so naming them changes nothing.
TLS_CIPHER_SUITES: Mapping[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    # Go's "insecure" list: accepted (metrics-server only logs a warning), served if OpenSSL still has them.
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
}
TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")


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


# --- flag values, parsed as pflag parses them --------------------------------------------------------


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


def go_duration(seconds: float) -> str:
    """Go's Duration.String() ("1m0s", "9s"), as metrics-server prints durations in its messages."""
    from kubemetrics._native import format_duration

    return format_duration(round(seconds * 1e9))


def parse_bool(text: str) -> bool:
    """Go strconv.ParseBool."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _go_int(text: str) -> int:
    """Go strconv.ParseInt(text, 0, 64): decimal, or 0x/0o/0b prefixed."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def _verbosity(text: str) -> int:
    """klog's Level: an unsigned 32-bit number."""
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text)


def _go_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None


def _ip_address(text: str) -> str:
    """pflag's IP value: an IPv4 or IPv6 address, nothing else."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f'failed to parse IP: "{text}"') from None


def _string_list(text: str) -> tuple[str, ...]:
    """pflag's StringSlice: comma-separated, empty string = empty list."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(_go_int(part) for part in _string_list(text))


def _quantity(text: str) -> str:
    """A Kubernetes quantity ("512", "1K", "2Ki"), kept as written."""
    if not _QUANTITY.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        )
    return text.strip()


def _quantity_is_zero(text: str) -> bool:
    match = _QUANTITY.fullmatch(text)
    return match is not None and float(match.group(1)) == 0


def _address_types(text: str) -> tuple[str, ...]:
    # metrics-server takes any strings here; a type no node has is simply never matched (warned at start).
    return _string_list(text)


def _dest_of(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


class _StringSliceAction(argparse.Action):
    """pflag's StringSlice: the first use replaces the default, later uses append."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        given = tuple(values) if isinstance(values, tuple) else ()
        seen: set[str] = getattr(namespace, "_string_slices_set", set())
        previous = getattr(namespace, self.dest) if self.dest in seen else ()
        seen.add(self.dest)
        namespace._string_slices_set = seen
        setattr(namespace, self.dest, (*previous, *given))


def _add_bool(
    group: argparse._ArgumentGroup, name: str, default: bool, help_text: str, dest: str | None = None
) -> None:
    """A pflag boolean: `--name`, `--name=true` or `--name=false`."""
    group.add_argument(
        name,
        nargs="?",
        const=True,
        default=default,
        type=parse_bool,
        metavar="true|false",
        help=help_text,
        dest=dest or _dest_of(name),
    )


def _add_string_slice(
    group: argparse._ArgumentGroup,
    name: str,
    default: tuple[str, ...],
    help_text: str,
    parse: Callable[[str], tuple[object, ...]] = _string_list,
    dest: str | None = None,
) -> None:
    group.add_argument(
        name,
        type=parse,
        default=default,
        action=_StringSliceAction,
        metavar="strings",
        help=help_text,
        dest=dest or _dest_of(name),
    )


# --- kubelet client -------------------------------------------------------------------------------------


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
    # --deprecated-kubelet-completely-insecure: plain HTTP, no credentials. Validated as metrics-server
    # validates it, then refused (workers speak HTTPS only).
    completely_insecure: bool = False

    def validate(self) -> None:
        """metrics-server's KubeletClientOptions.Validate, first failure first, then kubemetrics' own."""
        if self.certificate_authority and self.insecure_tls:
            raise OptionsError("cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls")
        if bool(self.client_key) != bool(self.client_certificate):
            raise OptionsError("need both --kubelet-client-key and --kubelet-client-certificate")
        for given, flag in (
            (self.client_key, "--kubelet-client-key"),
            (self.client_certificate, "--kubelet-client-certificate"),
            (self.insecure_tls, "--kubelet-insecure-tls"),
            (self.certificate_authority, "--kubelet-certificate-authority"),
        ):
            if given and self.completely_insecure:
                raise OptionsError(f"cannot use both {flag} and {_INSECURE_FLAG}")
        if self.request_timeout_seconds <= 0:
            raise OptionsError("kubelet-request-timeout should be positive")
        if self.completely_insecure:
            raise OptionsError(
                f"{_INSECURE_FLAG} is not supported: kubemetrics reaches kubelets over HTTPS only "
                "(--kubelet-insecure-tls skips verifying their serving certificates)"
            )
        if self.endpoint not in KUBELET_ENDPOINTS:
            raise OptionsError(f"--kubelet-endpoint should be one of {', '.join(KUBELET_ENDPOINTS)}")
        if self.max_body_bytes <= 0:
            raise OptionsError("--kubelet-max-body-bytes should be positive")

    def warnings(self) -> list[str]:
        unknown = [t for t in self.preferred_address_types if t not in KNOWN_ADDRESS_TYPES]
        if not unknown:
            return []
        return [
            f"--kubelet-preferred-address-types: no node address has type(s) {', '.join(unknown)}; "
            f"known types are {', '.join(DEFAULT_ADDRESS_TYPES)}"
        ]


_INSECURE_FLAG = "--deprecated-kubelet-completely-insecure"


def add_kubelet_flags(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("Kubelet client flags")
    _add_bool(
        group,
        _INSECURE_FLAG,
        False,
        "DEPRECATED: plain HTTP to kubelets without credentials. Not supported by kubemetrics: refused at start "
        "(after metrics-server's checks of the flags it conflicts with).",
    )
    group.add_argument(
        "--kubelet-certificate-authority",
        default="",
        help="Path to the CA to use to validate the Kubelet's serving certificates.",
    )
    group.add_argument("--kubelet-client-certificate", default="", help="Path to a client cert file for TLS.")
    group.add_argument("--kubelet-client-key", default="", help="Path to a client key file for TLS.")
    _add_bool(
        group,
        "--kubelet-insecure-tls",
        False,
        "Do not verify CA of serving certificates presented by Kubelets. For testing purposes only.",
    )
    group.add_argument(
        "--kubelet-port", type=_go_int, default=10250, help="The port to use to connect to Kubelets. (default 10250)"
    )
    _add_string_slice(
        group,
        "--kubelet-preferred-address-types",
        DEFAULT_ADDRESS_TYPES,
        "The priority of node address types to use when determining which address to use to connect "
        "to a particular node (default [Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP])",
        parse=_address_types,
    )
    group.add_argument(
        "--kubelet-request-timeout",
        type=parse_duration,
        default=10.0,
        help="The length of time to wait before giving up on a single request to Kubelet. Non-zero values "
        "should contain a corresponding time unit (e.g. 1s, 2m, 3h). (default 10s)",
    )
    _add_bool(
        group,
        "--kubelet-use-node-status-port",
        False,
        "Use the port in the node status. Takes precedence over --kubelet-port flag.",
    )
    group.add_argument(
        "--kubelet-bearer-token-file",
        default="",
        help="[kubemetrics] File holding a bearer token sent to kubelets, re-read when it changes "
        "(default: the in-cluster ServiceAccount token).",
    )
    group.add_argument(
        "--kubelet-endpoint",
        choices=KUBELET_ENDPOINTS,
        default="auto",
        help="[kubemetrics] Kubelet endpoint to scrape: resource (/metrics/resource, as metrics-server >= 0.6), "
        "summary (/stats/summary?only_cpu_and_memory=true, as metrics-server 0.5), or auto (resource, falling back "
        "per node to summary when the kubelet answers 404). The node annotation metrics.k8s.io/resource-metrics-path "
        "overrides the resource path. (default auto)",
    )
    group.add_argument(
        "--kubelet-max-body-bytes",
        type=_go_int,
        default=64 * 1024 * 1024,
        help="[kubemetrics] Refuse kubelet responses larger than this many bytes (the node's sample is lost, "
        "counted and logged). (default 67108864)",
    )
    return group


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
        completely_insecure=args.deprecated_kubelet_completely_insecure,
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


# --- delegated authentication and authorization ----------------------------------------------------------

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


def add_delegated_auth_flags(parser: argparse.ArgumentParser) -> None:
    authentication = parser.add_argument_group("Apiserver authentication flags")
    authentication.add_argument(
        "--authentication-kubeconfig",
        default="",
        help="kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
        "tokenreviews.authentication.k8s.io. (default: in-cluster; with neither, authentication and "
        "authorization are off: standalone mode)",
    )
    _add_bool(
        authentication,
        "--authentication-skip-lookup",
        False,
        "If false, the authentication-kubeconfig will be used to lookup missing authentication "
        "configuration from the cluster.",
    )
    authentication.add_argument(
        "--authentication-token-webhook-cache-ttl",
        type=parse_duration,
        default=10.0,
        help="The duration to cache responses from the webhook token authenticator. (default 10s)",
    )
    _add_bool(
        authentication,
        "--authentication-tolerate-lookup-failure",
        False,
        "If true, failures to look up missing authentication configuration from the cluster are not "
        "considered fatal. Note that this can result in authentication that treats all requests as anonymous.",
    )
    authentication.add_argument(
        "--client-ca-file",
        default="",
        help="If set, any request presenting a client certificate signed by one of the authorities in the "
        "client-ca-file is authenticated with an identity corresponding to the CommonName of the client certificate.",
    )
    _add_string_slice(
        authentication,
        "--requestheader-allowed-names",
        (),
        "List of client certificate common names to allow to provide usernames in headers specified by "
        "--requestheader-username-headers. If empty, any client certificate validated by the authorities in "
        "--requestheader-client-ca-file is allowed.",
    )
    authentication.add_argument(
        "--requestheader-client-ca-file",
        default="",
        help="Root certificate bundle to use to verify client certificates on incoming requests before trusting "
        "usernames in headers specified by --requestheader-username-headers.",
    )
    _add_string_slice(
        authentication,
        "--requestheader-extra-headers-prefix",
        ("x-remote-extra-",),
        "List of request header prefixes to inspect. X-Remote-Extra- is suggested. (default [x-remote-extra-])",
    )
    _add_string_slice(
        authentication,
        "--requestheader-group-headers",
        ("x-remote-group",),
        "List of request headers to inspect for groups. X-Remote-Group is suggested. (default [x-remote-group])",
    )
    add_compat_flags(authentication, "apiserver authentication")
    _add_string_slice(
        authentication,
        "--requestheader-username-headers",
        ("x-remote-user",),
        "List of request headers to inspect for usernames. X-Remote-User is common. (default [x-remote-user])",
    )

    authorization = parser.add_argument_group("Apiserver authorization flags")
    _add_string_slice(
        authorization,
        "--authorization-always-allow-paths",
        DEFAULT_ALWAYS_ALLOW_PATHS,
        "A list of HTTP paths to skip during authorization, i.e. these are authorized without contacting "
        "the 'core' kubernetes server. Setting it replaces the default. (default [/healthz,/readyz,/livez])",
    )
    authorization.add_argument(
        "--authorization-kubeconfig",
        default="",
        help="kubeconfig file pointing at the 'core' kubernetes server with enough rights to create "
        "subjectaccessreviews.authorization.k8s.io. (default: in-cluster)",
    )
    authorization.add_argument(
        "--authorization-webhook-cache-authorized-ttl",
        type=parse_duration,
        default=10.0,
        help="The duration to cache 'authorized' responses from the webhook authorizer. (default 10s)",
    )
    authorization.add_argument(
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


# --- metrics-server flags accepted with no effect --------------------------------------------------------

CompatKind = Literal["bool", "int", "float", "duration", "string", "strings", "repeated", "ip", "quantity", "ints"]


@dataclass(frozen=True, slots=True)
class CompatFlag:
    """A metrics-server flag accepted so that its Deployment args start kubemetrics unchanged, though it
    has no effect here. `why` says why (the start-up warning and docs/flags.md quote it). A value equal to
    `default` or in `quiet` is not warned about: kubemetrics behaves that way anyway."""

    name: str
    section: str
    kind: CompatKind
    default: object
    why: str
    quiet: tuple[object, ...] = ()
    warns: bool = True

    @property
    def dest(self) -> str:
        return "compat_" + self.name.replace("-", "_")

    def is_quiet(self, value: object) -> bool:
        return not self.warns or value == self.default or value in self.quiet


_NO_WATCH = "kubemetrics serves no watch (nor does metrics-server: watch answers 405)"
_NO_AUDIT = "kubemetrics writes no audit log"
_NO_HTTP2 = "kubemetrics serves HTTP/1.1"
_NO_EMULATION = "kubemetrics emulates no other Kubernetes version"

COMPAT_FLAGS: tuple[CompatFlag, ...] = (
    # generic (k8s.io/apiserver ServerRunOptions)
    CompatFlag("advertise-address", "generic", "ip", "", "kubemetrics joins no apiserver cluster to advertise to"),
    CompatFlag("cors-allowed-origins", "generic", "strings", (), "kubemetrics sends no CORS headers"),
    CompatFlag("emulated-version", "generic", "strings", (), _NO_EMULATION),
    CompatFlag("emulation-forward-compatible", "generic", "bool", False, _NO_EMULATION),
    CompatFlag("external-hostname", "generic", "string", "", "kubemetrics generates no externalized URLs"),
    CompatFlag("feature-gates", "generic", "repeated", (), "kubemetrics has none of the apiserver's feature gates"),
    CompatFlag("goaway-chance", "generic", "float", 0.0, _NO_HTTP2),
    CompatFlag("livez-grace-period", "generic", "duration", 0.0, "kubemetrics has no post-start hooks to wait for"),
    CompatFlag("max-mutating-requests-inflight", "generic", "int", 200, "metrics.k8s.io is read-only", warns=False),
    CompatFlag("max-requests-inflight", "generic", "int", 400, "requests in flight are not limited"),
    CompatFlag("min-compatibility-version", "generic", "strings", (), _NO_EMULATION),
    CompatFlag("min-request-timeout", "generic", "int", 1800, _NO_WATCH, warns=False),
    CompatFlag(
        "request-timeout", "generic", "duration", 60.0, "responses are rendered from memory; no timeout applies"
    ),
    CompatFlag("runtime-config-emulation-forward-compatible", "generic", "bool", False, _NO_EMULATION),
    CompatFlag(
        "shutdown-send-retry-after", "generic", "bool", False, "in-flight requests are not drained with 429 answers"
    ),
    CompatFlag("shutdown-watch-termination-grace-period", "generic", "duration", 0.0, _NO_WATCH, warns=False),
    CompatFlag(
        "storage-initialization-timeout", "generic", "duration", 60.0, "the store is in memory: nothing to wait for"
    ),
    CompatFlag("strict-transport-security-directives", "generic", "strings", (), "kubemetrics sends no HSTS header"),
    # apiserver secure serving
    CompatFlag("disable-http2-serving", "apiserver secure serving", "bool", False, _NO_HTTP2, quiet=(True,)),
    CompatFlag("http2-max-streams-per-connection", "apiserver secure serving", "int", 0, _NO_HTTP2, warns=False),
    CompatFlag(
        "permit-address-sharing",
        "apiserver secure serving",
        "bool",
        False,
        "the listener sets SO_REUSEADDR anyway (asyncio's default)",
        quiet=(True,),
    ),
    CompatFlag("permit-port-sharing", "apiserver secure serving", "bool", False, "SO_REUSEPORT is not set"),
    CompatFlag(
        "tls-curve-preferences",
        "apiserver secure serving",
        "ints",
        (),
        "OpenSSL's default key exchange groups are used",
    ),
    CompatFlag(
        "tls-sni-cert-key",
        "apiserver secure serving",
        "repeated",
        (),
        "no SNI certificates are served: every client gets --tls-cert-file's (or the generated) certificate",
    ),
    # apiserver authentication
    CompatFlag(
        "requestheader-uid-headers",
        "apiserver authentication",
        "strings",
        (),
        "UID headers are taken from the extension-apiserver-authentication ConfigMap only",
    ),
    # apiserver audit log: only the flags that would turn a backend on are worth a warning.
    CompatFlag("audit-log-batch-buffer-size", "apiserver audit log", "int", 10000, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-batch-max-size", "apiserver audit log", "int", 1, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-batch-max-wait", "apiserver audit log", "duration", 0.0, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-batch-throttle-burst", "apiserver audit log", "int", 0, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-batch-throttle-enable", "apiserver audit log", "bool", False, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-batch-throttle-qps", "apiserver audit log", "float", 0.0, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-compress", "apiserver audit log", "bool", False, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-format", "apiserver audit log", "string", "json", _NO_AUDIT, warns=False),
    CompatFlag("audit-log-maxage", "apiserver audit log", "int", 366, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-maxbackup", "apiserver audit log", "int", 100, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-maxsize", "apiserver audit log", "int", 100, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-mode", "apiserver audit log", "string", "blocking", _NO_AUDIT, warns=False),
    CompatFlag("audit-log-path", "apiserver audit log", "string", "", _NO_AUDIT),
    CompatFlag("audit-log-truncate-enabled", "apiserver audit log", "bool", False, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-truncate-max-batch-size", "apiserver audit log", "int", 10485760, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-truncate-max-event-size", "apiserver audit log", "int", 102400, _NO_AUDIT, warns=False),
    CompatFlag("audit-log-version", "apiserver audit log", "string", "audit.k8s.io/v1", _NO_AUDIT, warns=False),
    CompatFlag("audit-policy-file", "apiserver audit log", "string", "", _NO_AUDIT),
    CompatFlag("audit-webhook-batch-buffer-size", "apiserver audit log", "int", 10000, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-batch-max-size", "apiserver audit log", "int", 400, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-batch-max-wait", "apiserver audit log", "duration", 30.0, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-batch-throttle-burst", "apiserver audit log", "int", 15, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-batch-throttle-enable", "apiserver audit log", "bool", True, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-batch-throttle-qps", "apiserver audit log", "float", 10.0, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-config-file", "apiserver audit log", "string", "", _NO_AUDIT),
    CompatFlag("audit-webhook-initial-backoff", "apiserver audit log", "duration", 10.0, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-mode", "apiserver audit log", "string", "batch", _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-truncate-enabled", "apiserver audit log", "bool", False, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-truncate-max-batch-size", "apiserver audit log", "int", 10485760, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-truncate-max-event-size", "apiserver audit log", "int", 102400, _NO_AUDIT, warns=False),
    CompatFlag("audit-webhook-version", "apiserver audit log", "string", "audit.k8s.io/v1", _NO_AUDIT, warns=False),
    # features
    CompatFlag("contention-profiling", "features", "bool", False, "kubemetrics serves no /debug/pprof"),
    CompatFlag("debug-socket-path", "features", "string", "", "kubemetrics serves no /debug/pprof"),
    CompatFlag(
        "enable-priority-and-fairness",
        "features",
        "bool",
        True,
        "no effect in metrics-server either (it has no informers to configure it)",
        warns=False,
    ),
    CompatFlag("profiling", "features", "bool", True, "kubemetrics serves no /debug/pprof", warns=False),
    # logging (-v is honoured; see add_serve_flags)
    CompatFlag("log-flush-frequency", "logging", "duration", 5.0, "every log line is written at once", warns=False),
    CompatFlag("log-json-info-buffer-size", "logging", "quantity", "0", "refused unless 0, as metrics-server does"),
    CompatFlag("log-json-split-stream", "logging", "bool", False, "refused unless false, as metrics-server does"),
    CompatFlag("log-text-info-buffer-size", "logging", "quantity", "0", "refused unless 0, as metrics-server does"),
    CompatFlag("log-text-split-stream", "logging", "bool", False, "refused unless false, as metrics-server does"),
    CompatFlag("logging-format", "logging", "string", "text", "kubemetrics writes klog-style text lines only"),
    CompatFlag("vmodule", "logging", "string", "", "verbosity is per process (-v), not per file"),
)
_COMPAT_BY_NAME = {flag.name: flag for flag in COMPAT_FLAGS}

_COMPAT_PARSERS: Mapping[CompatKind, Callable[[str], object]] = {
    "bool": parse_bool,
    "int": _go_int,
    "float": _go_float,
    "duration": parse_duration,
    "string": str,
    "strings": _string_list,
    "repeated": str,
    "ip": _ip_address,
    "quantity": _quantity,
    "ints": _int_list,
}


def add_compat_flags(group: argparse._ArgumentGroup, section: str) -> None:
    """Adds the accepted-and-ignored flags of `section` to `group`."""
    for flag in COMPAT_FLAGS:
        if flag.section != section:
            continue
        name = f"--{flag.name}"
        default = _go_text(flag.default, flag.kind)
        shown_default = f" (default {default})" if default else ""
        help_text = f"Accepted for metrics-server compatibility; no effect: {flag.why}.{shown_default}"
        if flag.kind == "bool":
            _add_bool(group, name, bool(flag.default), help_text, dest=flag.dest)
        elif flag.kind == "strings":
            _add_string_slice(group, name, (), help_text, dest=flag.dest)
        elif flag.kind == "ints":
            _add_string_slice(group, name, (), help_text, parse=_int_list, dest=flag.dest)
        elif flag.kind == "repeated":
            group.add_argument(name, dest=flag.dest, action="append", default=[], help=help_text)
        else:
            # argparse runs `type` on a string default too, and "" is no IP address.
            default_value = None if flag.kind == "ip" else flag.default
            group.add_argument(
                name, dest=flag.dest, type=_COMPAT_PARSERS[flag.kind], default=default_value, help=help_text
            )


def _compat_values(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    values: list[tuple[str, object]] = []
    for flag in COMPAT_FLAGS:
        value = getattr(args, flag.dest)
        if value is None:
            value = flag.default
        values.append((flag.name, tuple(value) if isinstance(value, list) else value))
    return tuple(values)


def _go_text(value: object, kind: str = "") -> str:
    """A value as metrics-server's --help prints defaults: Go durations, lowercase booleans, [a,b] lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "duration" and isinstance(value, int | float):
        return go_duration(float(value))
    if isinstance(value, tuple | list):
        return "[" + ",".join(str(item) for item in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_HSTS_INVALID = (
    "--strict-transport-security-directives invalid, allowed values: max-age=expireTime, includeSubDomains, "
    "preload. see https://tools.ietf.org/html/rfc6797#section-6.1 for more information"
)


def _compat_errors(values: Mapping[str, object]) -> Iterator[str]:
    """metrics-server's checks of the flags it has and kubemetrics ignores, in its order: the logging
    configuration (component-base logs/api/v1 Validate, no feature gates enabled), then
    ServerRunOptions.Validate (k8s.io/apiserver)."""

    def number(name: str) -> float:
        value = values.get(name, _COMPAT_BY_NAME[name].default)
        assert isinstance(value, int | float)
        return float(value)

    def text(name: str) -> str:
        return str(values.get(name, _COMPAT_BY_NAME[name].default))

    def items(name: str) -> tuple[str, ...]:
        value = values.get(name, ())
        assert isinstance(value, tuple)
        return tuple(str(item) for item in value)

    if number("log-flush-frequency") <= 0:
        yield f"--log-flush-frequency {go_duration(number('log-flush-frequency'))}: must be greater than zero"
    if text("logging-format") not in ("text", "json"):
        yield f'--logging-format "{text("logging-format")}": unsupported log format (permitted: "json", "text")'
    if text("vmodule") and text("logging-format") != "text":
        yield "--vmodule is only supported for the text log format"
    for item in text("vmodule").split(",") if text("vmodule") else ():
        pattern, _, level = item.partition("=")
        if not pattern or not level.isdigit():
            yield f'--vmodule "{text("vmodule")}": expected a comma-separated list of pattern=N'
            break
    for stream_flag, buffer_flag in (
        ("log-text-split-stream", "log-text-info-buffer-size"),
        ("log-json-split-stream", "log-json-info-buffer-size"),
    ):
        if values.get(stream_flag, False):
            yield f"--{stream_flag}: feature LoggingAlphaOptions is disabled"
        if not _quantity_is_zero(text(buffer_flag)):
            yield f"--{buffer_flag}: feature LoggingAlphaOptions is disabled"

    if number("livez-grace-period") < 0:
        yield "--livez-grace-period can not be a negative value"
    if number("max-requests-inflight") < 0:
        yield "--max-requests-inflight can not be negative value"
    if number("max-mutating-requests-inflight") < 0:
        yield "--max-mutating-requests-inflight can not be negative value"
    if number("request-timeout") < 0:
        yield "--request-timeout can not be negative value"
    if not 0 <= number("goaway-chance") <= 0.02:
        yield "--goaway-chance can not be less than 0 or greater than 0.02"
    if number("min-request-timeout") < 0:
        yield "--min-request-timeout can not be negative value"
    if number("storage-initialization-timeout") < 0:
        yield "--storage-initialization-timeout can not be negative value"
    if number("shutdown-watch-termination-grace-period") < 0:
        yield "shutdown-watch-termination-grace-period, if provided, can not be a negative value"
    for directive in items("strict-transport-security-directives"):
        if directive not in ("includeSubDomains", "preload"):
            key, _, _ = directive.partition("=")
            if key != "max-age" or directive.count("=") != 1:
                yield _HSTS_INVALID
    for origin in items("cors-allowed-origins"):
        try:
            re.compile(origin)
        except re.error as err:
            yield f"--cors-allowed-origins has an invalid regular expression: {err}"
            continue
        if not (("^" in origin or "//" in origin) and ("$" in origin or ":" in origin)):
            yield (
                "--cors-allowed-origins has an invalid regular expression: regular expression does not pin to "
                f"start/end of host in the origin header: {origin}"
            )
    if not items("emulated-version"):
        for flag, field_name in (
            ("emulation-forward-compatible", "EmulationForwardCompatible"),
            ("runtime-config-emulation-forward-compatible", "RuntimeConfigEmulationForwardCompatible"),
        ):
            if values.get(flag, False):
                yield (
                    f"--{flag}: ServerRunOptions.{field_name} cannot be set to true if the emulation version is "
                    "the same as the binary version"
                )


# --- serve ------------------------------------------------------------------------------------------------


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
    # --tls-min-version (a TLS_VERSIONS name; "" is TLS 1.2) and --tls-cipher-suites (TLS_CIPHER_SUITES names).
    tls_min_version: str = ""
    tls_cipher_suites: tuple[str, ...] = ()
    inventory_file: str = ""
    kubeconfig: str = ""
    node_selector: str = ""
    standalone_core_api: bool = False
    runtime_dir: str = ""
    # Consecutive failed scrapes of a node during which its last good sample stays served.
    tolerated_scrape_failures: int = 1
    # Serve a pod whose container reports a working set of exactly 0 (metrics-server drops it).
    keep_zero_memory_containers: bool = False
    # Above this many nodes, the per-node metrics_server_kubelet_* series are not kept (selfmetrics.py).
    self_metrics_max_nodes: int = DEFAULT_SELF_METRICS_MAX_NODES
    # --shutdown-delay-duration: after SIGTERM, keep serving (readyz failing) this long before stopping.
    shutdown_delay_seconds: float = 0.0
    verbosity: int = 0
    auth: DelegatedAuthOptions = field(default_factory=DelegatedAuthOptions)
    # Values of the accepted-and-ignored metrics-server flags (COMPAT_FLAGS), by flag name.
    compat: tuple[tuple[str, object], ...] = ()

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else usable_cpus()

    def validate(self) -> None:
        """Raises OptionsError with the first problem, checked in metrics-server's order (kubelet client,
        resolution, logging, generic server options), then the serving and kubemetrics flags."""
        self.kubelet.validate()
        if self.metric_resolution_seconds < 10:
            raise OptionsError(
                "metric-resolution should be a time duration at least 10s, but value "
                f"{go_duration(self.metric_resolution_seconds)} provided"
            )
        if self.metric_resolution_seconds * 9 / 10 < self.kubelet.request_timeout_seconds:
            raise OptionsError(
                "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value "
                f"{go_duration(self.metric_resolution_seconds)} kubelet-request-timeout value "
                f"{go_duration(self.kubelet.request_timeout_seconds)} provided"
            )
        for error in _compat_errors(dict(self.compat)):
            raise OptionsError(error)
        if self.shutdown_delay_seconds < 0:
            raise OptionsError("--shutdown-delay-duration can not be negative value")
        self._validate_serving()
        self._validate_kubemetrics()

    def _validate_serving(self) -> None:
        if not 0 <= self.secure_port <= 65535:
            raise OptionsError(
                f"--secure-port {self.secure_port} must be between 0 and 65535, inclusive (0 picks a free port)"
            )
        # k8s.io/apiserver's words ("missing filename for serving cert"), plus which flag is missing.
        if self.tls_cert_file and not self.tls_private_key_file:
            raise OptionsError(
                "missing filename for serving cert: --tls-cert-file is set but --tls-private-key-file is not"
            )
        if self.tls_private_key_file and not self.tls_cert_file:
            raise OptionsError(
                "missing filename for serving cert: --tls-private-key-file is set but --tls-cert-file is not"
            )
        if self.tls_min_version and self.tls_min_version not in TLS_VERSIONS:
            raise OptionsError(
                f'--tls-min-version: unknown tls version "{self.tls_min_version}"; '
                f"possible values: {', '.join(TLS_VERSIONS)}"
            )
        for suite in self.tls_cipher_suites:
            if suite not in TLS_CIPHER_SUITES:
                raise OptionsError(f"--tls-cipher-suites: Cipher suite {suite} not supported or doesn't exist")

    def _validate_kubemetrics(self) -> None:
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
        if self.self_metrics_max_nodes < 0:
            raise OptionsError("--self-metrics-max-nodes should be 0 (no per-node series) or positive")

    def warnings(self) -> list[str]:
        """One line per flag given a value kubemetrics cannot honour (logged at start, not fatal)."""
        lines = self.kubelet.warnings()
        for name, value in self.compat:
            flag = _COMPAT_BY_NAME[name]
            if not flag.is_quiet(value):
                lines.append(
                    f"--{name}={_go_text(value, flag.kind)} is accepted for metrics-server compatibility "
                    f"and has no effect: {flag.why}"
                )
        return lines


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """Every `kubemetrics serve` flag, in metrics-server's sections and order, then kubemetrics' own."""
    metrics_server = parser.add_argument_group("Metrics server flags")
    metrics_server.add_argument(
        "--kubeconfig",
        default="",
        help="The path to the kubeconfig used to connect to the Kubernetes API server and the Kubelets "
        "(defaults to in-cluster config)",
    )
    metrics_server.add_argument(
        "--metric-resolution",
        type=parse_duration,
        default=60.0,
        help="The resolution at which metrics-server will retain metrics, must set value at least 10s. (default 1m0s)",
    )
    _add_bool(metrics_server, "--version", False, "Show version")

    generic = parser.add_argument_group("Generic flags")
    add_compat_flags(generic, "generic")
    generic.add_argument(
        "--shutdown-delay-duration",
        type=parse_duration,
        default=0.0,
        help="Time to delay the termination. During that time the server keeps serving requests normally and "
        "/readyz returns failure. Graceful termination starts after this delay has elapsed.",
    )

    kubelet = add_kubelet_flags(parser)
    kubelet.add_argument(
        "-l",
        "--node-selector",
        default="",
        help="Selector (label query) to filter on, not including uninitialized ones, supports '=', '==', "
        "and '!='.(e.g. -l key1=value1,key2=value2).",
    )

    serving = parser.add_argument_group("Apiserver secure serving flags")
    serving.add_argument(
        "--bind-address",
        type=_ip_address,
        default="0.0.0.0",
        help="The IP address on which to listen for the --secure-port port. (default 0.0.0.0)",
    )
    serving.add_argument(
        "--cert-dir",
        default="apiserver.local.config/certificates",
        help="The directory where the TLS certs are located. If --tls-cert-file and --tls-private-key-file "
        'are provided, this flag will be ignored. (default "apiserver.local.config/certificates")',
    )
    add_compat_flags(serving, "apiserver secure serving")
    serving.add_argument(
        "--secure-port",
        type=_go_int,
        default=443,
        help="The port on which to serve HTTPS with authentication and authorization; 0 picks a free port. "
        "(default 443)",
    )
    serving.add_argument(
        "--tls-cert-file",
        default="",
        help="File containing the default x509 Certificate for HTTPS. (CA cert, if any, concatenated after "
        "server cert). If not given, a self-signed certificate and key are generated in --cert-dir.",
    )
    _add_string_slice(
        serving,
        "--tls-cipher-suites",
        (),
        "Comma-separated list of cipher suites for the server (Go crypto/tls names). If omitted, the default "
        f"cipher suites are used. Possible values: {', '.join(sorted(TLS_CIPHER_SUITES))}.",
    )
    serving.add_argument(
        "--tls-min-version",
        default="",
        help=f"Minimum TLS version supported. Possible values: {', '.join(TLS_VERSIONS)} (default VersionTLS12)",
    )
    serving.add_argument(
        "--tls-private-key-file",
        default="",
        help="File containing the default x509 private key matching --tls-cert-file.",
    )

    add_delegated_auth_flags(parser)
    add_compat_flags(parser.add_argument_group("Apiserver audit log flags"), "apiserver audit log")
    add_compat_flags(parser.add_argument_group("Features flags"), "features")
    logging_group = parser.add_argument_group("Logging flags")
    add_compat_flags(logging_group, "logging")
    logging_group.add_argument(
        "-v", "--v", dest="verbosity", type=_verbosity, default=0, help="number for the log level verbosity"
    )

    kubemetrics = parser.add_argument_group("kubemetrics flags")
    kubemetrics.add_argument(
        "--workers", type=_go_int, default=0, help="Scraping worker processes (default: one per usable core)."
    )
    kubemetrics.add_argument(
        "--tolerated-scrape-failures",
        type=_go_int,
        default=1,
        help="Consecutive failed scrapes of a node during which its last good sample is still served; 0 hides "
        "the node at its first failure, as metrics-server does (a gap of about two resolutions). (default 1)",
    )
    _add_bool(
        kubemetrics,
        "--keep-zero-memory-containers",
        False,
        "Serve a pod one of whose containers reports a working set of exactly 0, with that container at "
        "memory 0, instead of dropping the whole pod as metrics-server does (metrics-server #1330). A missing "
        "working set and zero or missing CPU still drop the pod. (default false)",
    )
    kubemetrics.add_argument(
        "--self-metrics-max-nodes",
        type=_go_int,
        default=DEFAULT_SELF_METRICS_MAX_NODES,
        help="Keep metrics-server's per-node /metrics series (metrics_server_kubelet_request_duration_seconds, "
        "metrics_server_kubelet_last_request_time_seconds) only while the cluster has at most this many nodes; "
        "the node-independent kubemetrics_kubelet_* series always keep the totals. 0: never. "
        f"(default {DEFAULT_SELF_METRICS_MAX_NODES})",
    )
    kubemetrics.add_argument(
        "--runtime-dir", default="", help="Directory for the worker gRPC socket (default: a new temporary directory)."
    )
    standalone = parser.add_argument_group("kubemetrics standalone mode flags")
    standalone.add_argument(
        "--inventory-file",
        default="",
        help="JSON file listing nodes (and optionally pods); see kubemetrics.inventory.static.",
    )
    _add_bool(
        standalone,
        "--standalone-core-api",
        False,
        "Also serve a minimal read-only /version, /api, /api/v1/nodes so kubectl works without a "
        "kube-apiserver (demo only).",
    )
    _name_value_types(parser)


def _name_value_types(parser: argparse.ArgumentParser) -> None:
    """Value placeholders in --help as pflag names them (`--metric-resolution duration`)."""
    placeholders: dict[object, str] = {
        parse_duration: "duration",
        _go_int: "int",
        _go_float: "float",
        _ip_address: "ip",
        _quantity: "quantity",
        _verbosity: "Level",
        None: "string",
    }
    for action in parser._actions:
        if action.metavar is None and action.nargs is None and action.option_strings and action.choices is None:
            action.metavar = placeholders.get(action.type, "string")


def serve_options_from(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        metric_resolution_seconds=args.metric_resolution,
        kubelet=kubelet_options_from(args),
        workers=args.workers,
        tolerated_scrape_failures=args.tolerated_scrape_failures,
        keep_zero_memory_containers=args.keep_zero_memory_containers,
        self_metrics_max_nodes=args.self_metrics_max_nodes,
        secure_port=args.secure_port,
        bind_address=args.bind_address,
        cert_dir=args.cert_dir,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        tls_min_version=args.tls_min_version,
        tls_cipher_suites=tuple(args.tls_cipher_suites),
        inventory_file=args.inventory_file,
        kubeconfig=args.kubeconfig,
        node_selector=args.node_selector,
        standalone_core_api=args.standalone_core_api,
        runtime_dir=args.runtime_dir,
        shutdown_delay_seconds=args.shutdown_delay_duration,
        verbosity=args.verbosity,
        auth=delegated_auth_options_from(args),
        compat=_compat_values(args),
    )


# --- worker -----------------------------------------------------------------------------------------------


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
    parser.add_argument(
        "-v", "--v", dest="verbosity", type=_verbosity, default=0, help="number for the log level verbosity"
    )
    _name_value_types(parser)


def worker_options_from(args: argparse.Namespace) -> WorkerOptions:
    return WorkerOptions(
        front_address=args.front_address,
        worker_id=args.worker_id,
        metric_resolution_seconds=args.metric_resolution,
        kubelet=kubelet_options_from(args),
        verbosity=args.verbosity,
    )


# --- docs/flags.md ----------------------------------------------------------------------------------------

# kubemetrics' own flags, with what they are for.
KUBEMETRICS_FLAGS: Mapping[str, str] = {
    "--kubelet-bearer-token-file": "bearer token for kubelets, re-read when it changes",
    "--kubelet-endpoint": "`resource`, `summary` or `auto` (resource, falling back per node to summary on 404)",
    "--kubelet-max-body-bytes": "larger kubelet responses are refused as `oversized`",
    "--workers": "scraping worker processes; 0 is one per usable core",
    "--tolerated-scrape-failures": "failed scrapes in a row during which a node's last good sample is served; "
    "0 is metrics-server's behaviour",
    "--keep-zero-memory-containers": "serve a pod whose container reports a zero working set (metrics-server #1330)",
    "--self-metrics-max-nodes": "above this many nodes, per-node `metrics_server_kubelet_*` series are not kept",
    "--runtime-dir": "where the workers' gRPC unix socket lives",
    "--inventory-file": "standalone mode: nodes (and pods) from a JSON file",
    "--standalone-core-api": "demo only: a read-only `/version`, `/api`, `/api/v1/nodes`",
}
# Flags kubemetrics honours with a difference worth knowing.
_SAME_FLAG_NOTES: Mapping[str, str] = {
    "--shutdown-delay-duration": "after SIGTERM, /readyz fails and requests are still answered for this long",
    "--secure-port": "0 picks a free port (metrics-server: no HTTPS at all)",
    "--kubelet-preferred-address-types": "unknown types are accepted, as metrics-server does, with a warning",
    "--tls-cipher-suites": "Go names, mapped to OpenSSL's; TLS 1.3 suites are not configurable (as in Go); "
    "suites this OpenSSL lacks (RC4, 3DES) are skipped with a warning",
    "--tls-min-version": "unset is VersionTLS12, as in the apiserver; VersionTLS10/11 may still be refused by "
    "OpenSSL's security level",
    "-v, --v": "0: info; 1 and above: debug",
    "--version": "prints kubemetrics' version",
}
# metrics-server flags kubemetrics cannot honour and refuses rather than ignores.
_REFUSED_FLAGS: Mapping[str, str] = {
    _INSECURE_FLAG: "plain HTTP to kubelets: checked against the TLS flags as metrics-server checks it, then "
    "refused at start when true (workers speak HTTPS only)",
}
_STATUS_TEXT = {
    "same": "same",
    "kubemetrics": "kubemetrics-specific",
    "compat": "accepted-and-ignored",
    "refused": "not supported",
}


def flags_markdown() -> str:
    """docs/flags.md: every `kubemetrics serve` flag, its default and how it relates to metrics-server."""
    parser = argparse.ArgumentParser(prog="kubemetrics serve", allow_abbrev=False)
    add_serve_flags(parser)
    lines = [
        "# `kubemetrics serve` flags",
        "",
        "Generated from `python/kubemetrics/options.py` (`flags_markdown()`); "
        "`tests/unit/test_options_flags.py` fails when this file is stale.",
        "",
        "Status: **same** — metrics-server's flag, name, default and validation, and honoured; "
        "**accepted-and-ignored** — metrics-server's flag, parsed and validated as metrics-server does so that "
        "existing Deployment args start kubemetrics unchanged, but without effect (a value that would change "
        "something is named in one warning line at start); **kubemetrics-specific** — not a metrics-server flag; "
        "**not supported** — metrics-server's flag, refused at start when set.",
        "",
        "The list is metrics-server v0.9's (`docs/command-line-flags.txt`). Flags it no longer has, such as klog's "
        "`--logtostderr` removed in v0.7, are unknown flags here as there. Flags are parsed as pflag parses "
        "them: `--flag=value` or `--flag value`, booleans as `--flag`, `--flag=true` or `--flag=false`, lists "
        "comma-separated (a repeated list flag adds to the first), no abbreviations. An unknown flag or a value "
        "of the wrong type fails with exit code 2, a usage line and a message naming the flag; conflicting or "
        "out-of-range values fail with exit code 2 and one `Error:` line naming the flag.",
        "",
    ]
    for group in parser._action_groups[2:]:
        lines += [f"## {group.title}", "", "| flag | default | status | notes |", "|---|---|---|---|"]
        for action in group._group_actions:
            lines.append(_markdown_row(action))
        lines.append("")
    return "\n".join(lines)


def _markdown_row(action: argparse.Action) -> str:
    names = ", ".join(action.option_strings)
    long_name = action.option_strings[-1]
    compat = _COMPAT_BY_NAME.get(long_name[2:])
    if compat is not None:
        status, note, default = "compat", compat.why, _go_text(compat.default, compat.kind)
    elif long_name in _REFUSED_FLAGS:
        status, note, default = "refused", _REFUSED_FLAGS[long_name], _default_text(action)
    elif long_name in KUBEMETRICS_FLAGS:
        status, note, default = "kubemetrics", KUBEMETRICS_FLAGS[long_name], _default_text(action)
    else:
        status, note, default = "same", _SAME_FLAG_NOTES.get(names, ""), _default_text(action)
    shown_default = f"`{default}`" if default else ""
    return f"| `{names}` | {shown_default} | {_STATUS_TEXT[status]} | {note} |"


def _default_text(action: argparse.Action) -> str:
    if action.dest == "workers":
        return "0 (one per core)"
    if action.type is parse_duration:
        return _go_text(action.default, "duration")
    if isinstance(action.default, bool) or action.default in (None, ""):
        return _go_text(action.default) if isinstance(action.default, bool) else ""
    return _go_text(action.default)
