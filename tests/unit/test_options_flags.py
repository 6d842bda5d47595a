"""`kubemetrics serve` accepts metrics-server's command line: every v0.9 flag, parsed as pflag parses it,
with metrics-server's defaults; flags without meaning here are accepted with a warning; unknown flags fail;
docs/flags.md lists them all."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from kubemetrics import __version__, cli
from kubemetrics.options import (
    COMPAT_FLAGS,
    DEFAULT_ADDRESS_TYPES,
    DelegatedAuthOptions,
    KubeletOptions,
    ServeOptions,
    flags_markdown,
    serve_options_from,
)

REPOSITORY = Path(__file__).resolve().parents[2]

# metrics-server v0.9.0 `--help` (its docs/command-line-flags.txt), every flag by its long name.
METRICS_SERVER_FLAGS = (
    "--kubeconfig", "--metric-resolution", "--version",
    "--advertise-address", "--cors-allowed-origins", "--emulated-version", "--emulation-forward-compatible",
    "--external-hostname", "--feature-gates", "--goaway-chance", "--livez-grace-period",
    "--max-mutating-requests-inflight", "--max-requests-inflight", "--min-compatibility-version",
    "--min-request-timeout", "--request-timeout", "--runtime-config-emulation-forward-compatible",
    "--shutdown-delay-duration", "--shutdown-send-retry-after", "--shutdown-watch-termination-grace-period",
    "--storage-initialization-timeout", "--strict-transport-security-directives",
    "--deprecated-kubelet-completely-insecure", "--kubelet-certificate-authority", "--kubelet-client-certificate",
    "--kubelet-client-key", "--kubelet-insecure-tls", "--kubelet-port", "--kubelet-preferred-address-types",
    "--kubelet-request-timeout", "--kubelet-use-node-status-port", "--node-selector",
    "--bind-address", "--cert-dir", "--disable-http2-serving", "--http2-max-streams-per-connection",
    "--permit-address-sharing", "--permit-port-sharing", "--secure-port", "--tls-cert-file", "--tls-cipher-suites",
    "--tls-curve-preferences", "--tls-min-version", "--tls-private-key-file", "--tls-sni-cert-key",
    "--authentication-kubeconfig", "--authentication-skip-lookup", "--authentication-token-webhook-cache-ttl",
    "--authentication-tolerate-lookup-failure", "--client-ca-file", "--requestheader-allowed-names",
    "--requestheader-client-ca-file", "--requestheader-extra-headers-prefix", "--requestheader-group-headers",
    "--requestheader-uid-headers", "--requestheader-username-headers",
    "--authorization-always-allow-paths", "--authorization-kubeconfig", "--authorization-webhook-cache-authorized-ttl",
    "--authorization-webhook-cache-unauthorized-ttl",
    "--audit-log-batch-buffer-size", "--audit-log-batch-max-size", "--audit-log-batch-max-wait",
    "--audit-log-batch-throttle-burst", "--audit-log-batch-throttle-enable", "--audit-log-batch-throttle-qps",
    "--audit-log-compress", "--audit-log-format", "--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize",
    "--audit-log-mode", "--audit-log-path", "--audit-log-truncate-enabled", "--audit-log-truncate-max-batch-size",
    "--audit-log-truncate-max-event-size", "--audit-log-version", "--audit-policy-file",
    "--audit-webhook-batch-buffer-size", "--audit-webhook-batch-max-size", "--audit-webhook-batch-max-wait",
    "--audit-webhook-batch-throttle-burst", "--audit-webhook-batch-throttle-enable",
    "--audit-webhook-batch-throttle-qps", "--audit-webhook-config-file", "--audit-webhook-initial-backoff",
    "--audit-webhook-mode", "--audit-webhook-truncate-enabled", "--audit-webhook-truncate-max-batch-size",
    "--audit-webhook-truncate-max-event-size", "--audit-webhook-version",
    "--contention-profiling", "--debug-socket-path", "--enable-priority-and-fairness", "--profiling",
    "--log-flush-frequency", "--log-json-info-buffer-size", "--log-json-split-stream", "--log-text-info-buffer-size",
    "--log-text-split-stream", "--logging-format", "--v", "--vmodule",
)  # fmt: skip


BAD_VALUE = "kubemetrics serve: error: argument"


def serve_parser() -> argparse.ArgumentParser:
    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = commands.choices["serve"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def serve_options(*argv: str) -> ServeOptions:
    return serve_options_from(cli.build_parser().parse_args(["serve", *argv]))


def parse_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The last stderr line of a command line argparse refuses (it exits 2)."""
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["serve", *argv])
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_every_metrics_server_flag_is_a_serve_flag() -> None:
    assert len(METRICS_SERVER_FLAGS) == 103
    known = {name for action in serve_parser()._actions for name in action.option_strings}
    assert [flag for flag in METRICS_SERVER_FLAGS if flag not in known] == []
    assert {"-l", "-v"} <= known


def test_without_flags_every_value_is_metrics_servers_default() -> None:
    options = serve_options()
    assert options == ServeOptions(compat=options.compat)
    assert (options.metric_resolution_seconds, options.secure_port, options.bind_address, options.cert_dir) == (
        60.0,
        443,
        "0.0.0.0",
        "apiserver.local.config/certificates",
    )
    assert options.kubelet == KubeletOptions()
    assert (options.kubelet.port, options.kubelet.request_timeout_seconds) == (10250, 10.0)
    assert options.kubelet.preferred_address_types == DEFAULT_ADDRESS_TYPES
    assert options.auth == DelegatedAuthOptions()
    assert options.auth.authorization_always_allow_paths == ("/healthz", "/readyz", "/livez")
    assert (options.keep_zero_memory_containers, options.self_metrics_max_nodes) == (False, 5000)
    assert dict(options.compat) == {flag.name: flag.default for flag in COMPAT_FLAGS}
    assert dict(options.compat)["profiling"] is True
    assert dict(options.compat)["audit-webhook-batch-max-wait"] == 30.0
    assert options.warnings() == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--kubelet-insecure-tls"], True),
        (["--kubelet-insecure-tls=true"], True),
        (["--kubelet-insecure-tls=1"], True),
        (["--kubelet-insecure-tls=T"], True),
        (["--kubelet-insecure-tls=false"], False),
        (["--kubelet-insecure-tls", "--kubelet-insecure-tls=False"], False),
        ([], False),
    ],
)
def test_booleans_take_pflags_forms(argv: list[str], expected: bool) -> None:
    assert serve_options(*argv).kubelet.insecure_tls is expected


def test_a_boolean_with_another_word_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_error(capsys, "--kubelet-insecure-tls=yes") == (
        'kubemetrics serve: error: argument --kubelet-insecure-tls: strconv.ParseBool: parsing "yes": invalid syntax'
    )


def test_list_flags_replace_the_default_then_add_to_it() -> None:
    assert serve_options("--authorization-always-allow-paths=/metrics").auth.authorization_always_allow_paths == (
        "/metrics",
    )
    repeated = serve_options(
        "--authorization-always-allow-paths=/healthz,/livez", "--authorization-always-allow-paths", "/metrics"
    )
    assert repeated.auth.authorization_always_allow_paths == ("/healthz", "/livez", "/metrics")
    assert serve_options("--authorization-always-allow-paths=").auth.authorization_always_allow_paths == ()
    assert serve_options("--tls-sni-cert-key=a.crt,a.key", "--tls-sni-cert-key=b.crt,b.key:*.b.com").compat[
        [name for name, _ in serve_options().compat].index("tls-sni-cert-key")
    ] == ("tls-sni-cert-key", ("a.crt,a.key", "b.crt,b.key:*.b.com"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-flag"], "kubemetrics: error: unrecognized arguments: --no-such-flag"),
        # pflag has no abbreviations: a prefix of a flag is another, unknown, flag.
        (["--kubelet-insecure"], "kubemetrics: error: unrecognized arguments: --kubelet-insecure"),
        # klog's flags left metrics-server in v0.7.
        (["--logtostderr"], "kubemetrics: error: unrecognized arguments: --logtostderr"),
        (["--bind-address=localhost"], f'{BAD_VALUE} --bind-address: failed to parse IP: "localhost"'),
        (["--metric-resolution=15"], f'{BAD_VALUE} --metric-resolution: time: invalid duration "15"'),
        (["--secure-port=https"], f'{BAD_VALUE} --secure-port: strconv.ParseInt: parsing "https": invalid syntax'),
        (["-v=-1"], f'{BAD_VALUE} -v/--v: strconv.ParseUint: parsing "-1": invalid syntax'),
        (
            ["--goaway-chance=often"],
            f'{BAD_VALUE} --goaway-chance: strconv.ParseFloat: parsing "often": invalid syntax',
        ),
    ],
)
def test_unknown_flags_and_malformed_values_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert parse_error(capsys, *argv) == message


@pytest.mark.parametrize(
    "argv",
    [
        # metrics-server's components.yaml
        [
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
        # its test overlay and the Helm chart with metrics.enabled
        [
            "--kubelet-insecure-tls",
            "--v=4",
            "--node-selector=metrics-server-skip!=true",
            "--authorization-always-allow-paths=/metrics",
        ],
        # kube-up's addon, with the flags people add for audit and profiling
        [
            "--metric-resolution=30s",
            "--kubelet-insecure-tls=true",
            "--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
            "--profiling=false",
            "--audit-log-maxage=7",
            "--logging-format=text",
            "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ],
    ],
)
def test_metrics_server_deployment_args_start_kubemetrics_unchanged(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    options = serve_options(*argv)
    options.validate()
    assert options.warnings() == []


def test_flags_without_effect_are_named_in_one_warning_line_each() -> None:
    options = serve_options(
        "--profiling=false",  # kubemetrics has no profiling anyway
        "--disable-http2-serving",  # nor HTTP/2
        "--audit-log-maxage=3",  # audit tuning, without an audit backend
        "--audit-log-path=/var/log/metrics-server-audit.log",
        "--permit-port-sharing",
        "--max-requests-inflight=100",
        "--tls-sni-cert-key=extra.crt,extra.key",
        "--inventory-file=x",
    )
    options.validate()
    assert options.warnings() == [
        "--max-requests-inflight=100 is accepted for metrics-server compatibility and has no effect: requests in "
        "flight are not limited",
        "--permit-port-sharing=true is accepted for metrics-server compatibility and has no effect: SO_REUSEPORT is "
        "not set",
        "--tls-sni-cert-key=[extra.crt,extra.key] is accepted for metrics-server compatibility and has no effect: no "
        "SNI certificates are served: every client gets --tls-cert-file's (or the generated) certificate",
        "--audit-log-path=/var/log/metrics-server-audit.log is accepted for metrics-server compatibility and has no "
        "effect: kubemetrics writes no audit log",
    ]


def test_kubemetrics_flags_parse() -> None:
    options = serve_options(
        "--keep-zero-memory-containers",
        "--self-metrics-max-nodes=0",
        "--shutdown-delay-duration=20s",
        "--tolerated-scrape-failures=0",
        "--workers=3",
    )
    assert options.keep_zero_memory_containers is True
    assert options.self_metrics_max_nodes == 0
    assert options.shutdown_delay_seconds == 20.0
    assert (options.tolerated_scrape_failures, options.workers) == (0, 3)


def test_version_prints_and_exits_before_validation(capsys: pytest.CaptureFixture[str]) -> None:
    # An invalid resolution alongside: metrics-server prints its version without validating.
    assert cli.main(["serve", "--version", "--metric-resolution=1s"]) == 0
    assert capsys.readouterr().out == f"v{__version__}\n"


def test_help_lists_flags_in_metrics_servers_sections(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["serve", "--help"])
    assert exited.value.code == 0
    sections = [line for line in capsys.readouterr().out.splitlines() if line.endswith("flags:")]
    assert sections == [
        "Metrics server flags:",
        "Generic flags:",
        "Kubelet client flags:",
        "Apiserver secure serving flags:",
        "Apiserver authentication flags:",
        "Apiserver authorization flags:",
        "Apiserver audit log flags:",
        "Features flags:",
        "Logging flags:",
        "kubemetrics flags:",
        "kubemetrics standalone mode flags:",
    ]


def test_docs_flags_md_is_generated_from_the_flags() -> None:
    assert (REPOSITORY / "docs" / "flags.md").read_text() == flags_markdown(), (
        "docs/flags.md is stale: .venv/bin/python -c 'from kubemetrics.options import flags_markdown; "
        'print(flags_markdown(), end="")\' > docs/flags.md'
    )


def test_docs_flags_md_gives_each_flag_its_default_and_status() -> None:
    rows = {line.split(" | ")[0]: line for line in flags_markdown().splitlines() if line.startswith("| `")}
    assert rows["| `--metric-resolution`"] == "| `--metric-resolution` | `1m0s` | same |  |"
    assert rows["| `--profiling`"] == (
        "| `--profiling` | `true` | accepted-and-ignored | kubemetrics serves no /debug/pprof |"
    )
    assert rows["| `--keep-zero-memory-containers`"].startswith(
        "| `--keep-zero-memory-containers` | `false` | kubemetrics-specific |"
    )
    assert rows["| `--self-metrics-max-nodes`"].startswith(
        "| `--self-metrics-max-nodes` | `5000` | kubemetrics-specific |"
    )
    assert rows["| `--deprecated-kubelet-completely-insecure`"].startswith(
        "| `--deprecated-kubelet-completely-insecure` | `false` | not supported |"
    )
    assert len(rows) == len(METRICS_SERVER_FLAGS) + 10  # kubemetrics' own ten
