"""Validation of `kubemetrics serve` flags: metrics-server's rules with its messages (cmd/metrics-server/app/
options, k8s.io/apiserver ServerRunOptions and serving options, component-base logging), kubemetrics' own
rules, and the worker count. Every rule is checked with its exact message, from the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubemetrics import cli
from kubemetrics.options import (
    KubeletOptions,
    OptionsError,
    ServeOptions,
    parse_duration,
    serve_options_from,
    usable_cpus,
)


def serve_options(*argv: str) -> ServeOptions:
    return serve_options_from(cli.build_parser().parse_args(["serve", *argv]))


def refusal(*argv: str, inventory: bool = True) -> str:
    """The message validation stops at for these flags (with an inventory file, so that it is not that)."""
    options = serve_options(*argv, *(["--inventory-file=nodes.json"] if inventory else []))
    with pytest.raises(OptionsError) as refused:
        options.validate()
    return str(refused.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m0s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_metrics_server_defaults_validate() -> None:
    serve_options("--inventory-file=nodes.json").validate()


# --- metric resolution (options.go validate) -----------------------------------------------------------


def test_resolution_below_ten_seconds_is_refused() -> None:
    assert (
        refusal("--metric-resolution=5s")
        == "metric-resolution should be a time duration at least 10s, but value 5s provided"
    )


def test_resolution_must_cover_the_kubelet_timeout_over_nine_tenths() -> None:
    # metrics-server rejects 10s with its default 10s kubelet timeout (10s × 0.9 < 10s)...
    assert refusal("--metric-resolution=10s") == (
        "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 10s "
        "kubelet-request-timeout value 10s provided"
    )
    assert refusal("--metric-resolution=1m", "--kubelet-request-timeout=1m") == (
        "metric-resolution should be larger than kubelet-request-timeout, but metric-resolution value 1m0s "
        "kubelet-request-timeout value 1m0s provided"
    )
    # ...and accepts it with a 9s one.
    serve_options("--metric-resolution=10s", "--kubelet-request-timeout=9s", "--inventory-file=x").validate()


# --- kubelet client (kubelet_client.go Validate), in metrics-server's order ------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--kubelet-insecure-tls", "--kubelet-certificate-authority=/ca.crt"],
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls",
        ),
        (["--kubelet-client-key=/k.pem"], "need both --kubelet-client-key and --kubelet-client-certificate"),
        (["--kubelet-client-certificate=/c.pem"], "need both --kubelet-client-key and --kubelet-client-certificate"),
        (
            [
                "--kubelet-client-key=/k.pem",
                "--kubelet-client-certificate=/c.pem",
                "--deprecated-kubelet-completely-insecure",
            ],
            "cannot use both --kubelet-client-key and --deprecated-kubelet-completely-insecure",
        ),
        (
            ["--kubelet-insecure-tls=true", "--deprecated-kubelet-completely-insecure=true"],
            "cannot use both --kubelet-insecure-tls and --deprecated-kubelet-completely-insecure",
        ),
        (
            ["--kubelet-certificate-authority=/ca.crt", "--deprecated-kubelet-completely-insecure"],
            "cannot use both --kubelet-certificate-authority and --deprecated-kubelet-completely-insecure",
        ),
        (["--kubelet-request-timeout=0s"], "kubelet-request-timeout should be positive"),
        (["--kubelet-request-timeout=-1s"], "kubelet-request-timeout should be positive"),
        (
            ["--deprecated-kubelet-completely-insecure"],
            "--deprecated-kubelet-completely-insecure is not supported: kubemetrics reaches kubelets over HTTPS "
            "only (--kubelet-insecure-tls skips verifying their serving certificates)",
        ),
        (["--kubelet-max-body-bytes=0"], "--kubelet-max-body-bytes should be positive"),
    ],
)
def test_kubelet_client_flags_are_checked_as_metrics_server_checks_them(argv: list[str], message: str) -> None:
    assert refusal(*argv) == message


def test_client_certificate_conflicts_with_completely_insecure_before_the_key_does() -> None:
    options = KubeletOptions(client_certificate="/c.pem", completely_insecure=True, client_key="")
    with pytest.raises(OptionsError) as refused:
        options.validate()
    # The pair rule comes first: a certificate alone is a missing key.
    assert str(refused.value) == "need both --kubelet-client-key and --kubelet-client-certificate"
    with pytest.raises(OptionsError) as refused:
        KubeletOptions(client_certificate="/c.pem", client_key="/k.pem", completely_insecure=True).validate()
    assert str(refused.value) == "cannot use both --kubelet-client-key and --deprecated-kubelet-completely-insecure"


def test_unknown_kubelet_endpoint_is_refused() -> None:
    with pytest.raises(OptionsError) as refused:
        KubeletOptions(endpoint="cadvisor").validate()
    assert str(refused.value) == "--kubelet-endpoint should be one of auto, resource, summary"


def test_unknown_address_types_are_accepted_with_a_warning_as_metrics_server_accepts_them() -> None:
    options = serve_options("--kubelet-preferred-address-types=InternalIP,InternalIp", "--inventory-file=x")
    options.validate()
    assert options.kubelet.preferred_address_types == ("InternalIP", "InternalIp")
    assert options.warnings() == [
        "--kubelet-preferred-address-types: no node address has type(s) InternalIp; known types are "
        "Hostname, InternalDNS, InternalIP, ExternalDNS, ExternalIP"
    ]


# --- secure serving (k8s.io/apiserver SecureServingOptions) -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--secure-port=70000"], "--secure-port 70000 must be between 0 and 65535, inclusive (0 picks a free port)"),
        (["--secure-port=-1"], "--secure-port -1 must be between 0 and 65535, inclusive (0 picks a free port)"),
        (
            ["--tls-cert-file=/tls.crt"],
            "missing filename for serving cert: --tls-cert-file is set but --tls-private-key-file is not",
        ),
        (
            ["--tls-private-key-file=/tls.key"],
            "missing filename for serving cert: --tls-private-key-file is set but --tls-cert-file is not",
        ),
        (
            ["--tls-min-version=VersionTLS14"],
            '--tls-min-version: unknown tls version "VersionTLS14"; possible values: VersionTLS10, VersionTLS11, '
            "VersionTLS12, VersionTLS13",
        ),
        (
            ["--tls-cipher-suites=TLS_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256"],
            "--tls-cipher-suites: Cipher suite ECDHE-RSA-AES128-GCM-SHA256 not supported or doesn't exist",
        ),
    ],
)
def test_serving_flags_are_checked_as_the_apiserver_checks_them(argv: list[str], message: str) -> None:
    assert refusal(*argv) == message


def test_tls_flags_take_go_names() -> None:
    options = serve_options(
        "--tls-min-version=VersionTLS13",
        "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA",
        "--inventory-file=x",
    )
    options.validate()
    assert options.tls_min_version == "VersionTLS13"
    assert options.tls_cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_RC4_128_SHA")


# --- generic server options and logging, which kubemetrics accepts and ignores --------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log-flush-frequency=0s"], "--log-flush-frequency 0s: must be greater than zero"),
        (["--logging-format=xml"], '--logging-format "xml": unsupported log format (permitted: "json", "text")'),
        (["--logging-format=json", "--vmodule=worker=2"], "--vmodule is only supported for the text log format"),
        (["--vmodule=worker"], '--vmodule "worker": expected a comma-separated list of pattern=N'),
        (["--log-text-split-stream"], "--log-text-split-stream: feature LoggingAlphaOptions is disabled"),
        (["--log-json-split-stream=true"], "--log-json-split-stream: feature LoggingAlphaOptions is disabled"),
        (["--log-text-info-buffer-size=2Ki"], "--log-text-info-buffer-size: feature LoggingAlphaOptions is disabled"),
        (["--log-json-info-buffer-size=512"], "--log-json-info-buffer-size: feature LoggingAlphaOptions is disabled"),
        (["--livez-grace-period=-1s"], "--livez-grace-period can not be a negative value"),
        (["--max-requests-inflight=-1"], "--max-requests-inflight can not be negative value"),
        (["--max-mutating-requests-inflight=-1"], "--max-mutating-requests-inflight can not be negative value"),
        (["--request-timeout=-1s"], "--request-timeout can not be negative value"),
        (["--goaway-chance=0.05"], "--goaway-chance can not be less than 0 or greater than 0.02"),
        (["--goaway-chance=-0.01"], "--goaway-chance can not be less than 0 or greater than 0.02"),
        (["--min-request-timeout=-1"], "--min-request-timeout can not be negative value"),
        (["--storage-initialization-timeout=-1s"], "--storage-initialization-timeout can not be negative value"),
        (["--shutdown-delay-duration=-1s"], "--shutdown-delay-duration can not be negative value"),
        (
            ["--shutdown-watch-termination-grace-period=-1s"],
            "shutdown-watch-termination-grace-period, if provided, can not be a negative value",
        ),
        (
            ["--strict-transport-security-directives=max-age=31536000,includeSubdomains"],
            "--strict-transport-security-directives invalid, allowed values: max-age=expireTime, includeSubDomains, "
            "preload. see https://tools.ietf.org/html/rfc6797#section-6.1 for more information",
        ),
        (
            ["--cors-allowed-origins=example.com"],
            "--cors-allowed-origins has an invalid regular expression: regular expression does not pin to "
            "start/end of host in the origin header: example.com",
        ),
        (
            ["--cors-allowed-origins=^https://(example\\.com$"],
            "--cors-allowed-origins has an invalid regular expression: missing ), unterminated subpattern at "
            "position 9",
        ),
        (
            ["--emulation-forward-compatible"],
            "--emulation-forward-compatible: ServerRunOptions.EmulationForwardCompatible cannot be set to true if "
            "the emulation version is the same as the binary version",
        ),
        (
            ["--runtime-config-emulation-forward-compatible"],
            "--runtime-config-emulation-forward-compatible: ServerRunOptions.RuntimeConfigEmulationForwardCompatible "
            "cannot be set to true if the emulation version is the same as the binary version",
        ),
    ],
)
def test_ignored_flags_are_still_checked_as_metrics_server_checks_them(argv: list[str], message: str) -> None:
    assert refusal(*argv) == message


def test_well_formed_values_of_ignored_flags_pass() -> None:
    serve_options(
        "--strict-transport-security-directives=max-age=31536000,includeSubDomains,preload",
        "--cors-allowed-origins=//example\\.com(:|$),^https://example\\.org$",
        "--goaway-chance=0.02",
        "--log-text-info-buffer-size=0",
        "--vmodule=worker*=2,front=1",
        "--emulated-version=kube=1.33",
        "--emulation-forward-compatible",
        "--inventory-file=x",
    ).validate()
    serve_options("--logging-format=json", "--inventory-file=x").validate()


# --- kubemetrics' own ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tolerated-scrape-failures=-1"], "--tolerated-scrape-failures should be 0 or positive"),
        (["--workers=-2"], "--workers should be 0 (one per core) or positive"),
        (["--self-metrics-max-nodes=-1"], "--self-metrics-max-nodes should be 0 (no per-node series) or positive"),
        (
            ["-l", "a b"],
            "--node-selector 'a b': unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
    ],
)
def test_kubemetrics_flags_are_checked(argv: list[str], message: str) -> None:
    assert refusal(*argv) == message


def test_an_inventory_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert refusal(inventory=False) == (
        "no inventory: pass --kubeconfig, run in a pod (KUBERNETES_SERVICE_HOST set), "
        "or pass --inventory-file (standalone mode)"
    )


def test_a_refused_flag_exits_2_with_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--metric-resolution=5s", "--inventory-file=x"]) == 2
    assert capsys.readouterr().err == (
        "Error: metric-resolution should be a time duration at least 10s, but value 5s provided\n"
    )


def test_worker_count_follows_a_cgroup_cpu_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert usable_cpus(str(cpu_max)) == min(2, len(os.sched_getaffinity(0)))
    cpu_max.write_text("max 100000\n")
    assert usable_cpus(str(cpu_max)) == len(os.sched_getaffinity(0))
    assert usable_cpus(str(tmp_path / "absent")) == len(os.sched_getaffinity(0))
    assert ServeOptions(workers=3).worker_count == 3
