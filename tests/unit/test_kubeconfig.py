"""API server configuration: a kubeconfig's current context (inline data or file paths, token or token
file, insecure-skip-tls-verify), in-cluster service-account config, and errors that name the problem."""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path

import pytest
import trustme
import yaml
from kubemetrics.inventory.kubeconfig import (
    KubeconfigError,
    load_api_server_config,
    load_kubeconfig,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_pems(ca: trustme.CA) -> tuple[bytes, bytes]:
    issued = ca.issue_cert("kubemetrics-client")
    return issued.cert_chain_pems[0].bytes(), issued.private_key_pem.bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object], **extra: object) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "contexts": [
            {"name": "other", "context": {"cluster": "other", "user": "other"}},
            {"name": "main", "context": {"cluster": "prod", "user": "admin"}},
        ],
        "clusters": [
            {"name": "other", "cluster": {"server": "https://other.invalid:6443"}},
            {"name": "prod", "cluster": cluster},
        ],
        "users": [{"name": "other", "user": {"token": "not-this-one"}}, {"name": "admin", "user": user}],
        **extra,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_inline_data_gives_a_verifying_context_with_the_client_certificate(
    tmp_path: Path, ca: trustme.CA, client_pems: tuple[bytes, bytes]
) -> None:
    cert, key = client_pems
    path = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://10.0.0.1:6443/", "certificate-authority-data": b64(ca.cert_pem.bytes())},
        {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
    )

    config = load_kubeconfig(path)
    context = config.ssl_context()

    assert config.server == "https://10.0.0.1:6443"
    assert config.certificate_authority.data == ca.cert_pem.bytes()
    assert config.client_certificate.data == cert
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # Only the configured CA, not the system roots as well (client-go trusts just the kubeconfig's CA).
    assert len(context.get_ca_certs()) == 1
    assert config.authorization() is None
    assert config.origin == f"kubeconfig {path} (context main)"


def test_file_paths_are_relative_to_the_kubeconfig_directory(
    tmp_path: Path, ca: trustme.CA, client_pems: tuple[bytes, bytes]
) -> None:
    (tmp_path / "pki").mkdir()
    ca.cert_pem.write_to_path(str(tmp_path / "pki" / "ca.crt"))
    (tmp_path / "pki" / "client.crt").write_bytes(client_pems[0])
    (tmp_path / "pki" / "client.key").write_bytes(client_pems[1])
    path = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://kube.example:6443", "certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/client.crt", "client-key": str(tmp_path / "pki" / "client.key")},
    )

    config = load_kubeconfig(path)

    assert config.certificate_authority.path == str(tmp_path / "pki" / "ca.crt")
    assert config.client_certificate.path == str(tmp_path / "pki" / "client.crt")
    assert config.client_key.path == str(tmp_path / "pki" / "client.key")
    assert len(config.ssl_context().get_ca_certs()) == 1


def test_the_current_context_chooses_cluster_and_user(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://prod:6443"}, {"token": "abc"})
    path.write_text(path.read_text().replace("current-context: main", "current-context: other"))

    config = load_kubeconfig(path)

    assert (config.server, config.authorization()) == ("https://other.invalid:6443", "Bearer not-this-one")


def test_a_token_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    path = write_kubeconfig(tmp_path / "config", {"server": "https://prod:6443"}, {"tokenFile": "token"})
    config = load_kubeconfig(path)
    assert config.authorization() == "Bearer first"

    token.write_text("second-and-longer\n")
    os.utime(token, ns=(1, 1))  # a different mtime even on coarse file systems

    assert config.authorization() == "Bearer second-and-longer"
    token.unlink()
    assert config.authorization() == "Bearer second-and-longer"  # the last good token stays


def test_insecure_skip_tls_verify_turns_verification_off(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", {"server": "https://prod:6443", "insecure-skip-tls-verify": True}, {"token": "t"}
    )

    context = load_kubeconfig(path).ssl_context()

    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


@pytest.mark.parametrize(
    ("cluster", "user", "extra", "message"),
    [
        ({"server": "https://p"}, {}, {"current-context": ""}, "current-context: not set"),
        ({"server": "https://p"}, {}, {"current-context": "missing"}, "contexts: no context named 'missing'"),
        ({}, {}, {}, "cluster 'prod': no server"),
        (
            {"server": "https://p"},
            {"exec": {"command": "aws"}},
            {},
            "user 'admin': exec plugins and auth providers are not supported",
        ),
        (
            {"server": "https://p", "certificate-authority-data": "%%%"},
            {},
            {},
            "cluster 'prod': certificate-authority-data: not valid base64",
        ),
    ],
)
def test_unusable_kubeconfigs_are_rejected_naming_the_field(
    tmp_path: Path, cluster: dict[str, object], user: dict[str, object], extra: dict[str, object], message: str
) -> None:
    path = write_kubeconfig(tmp_path / "config", cluster, user, **extra)

    with pytest.raises(KubeconfigError) as raised:
        load_kubeconfig(path)

    assert str(raised.value).startswith(f"kubeconfig {path}: {message}")


def test_a_missing_certificate_file_is_reported_when_the_context_is_built(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config", {"server": "https://p", "certificate-authority": "nope.crt"}, {})

    with pytest.raises(KubeconfigError, match=r"cannot read the certificate authority .*nope\.crt"):
        load_kubeconfig(path).ssl_context()


def test_an_unreadable_kubeconfig_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"kubeconfig .*absent: cannot read"):
        load_kubeconfig(tmp_path / "absent")


def fake_service_account(directory: Path, ca: trustme.CA) -> Path:
    directory.mkdir()
    (directory / "token").write_text("sa-token")
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    return directory


def test_in_cluster_config_uses_the_service_environment_and_account(tmp_path: Path, ca: trustme.CA) -> None:
    account = fake_service_account(tmp_path / "sa", ca)
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    config = load_api_server_config("", environ=environ, service_account_dir=account)

    assert config.server == "https://10.0.0.1:443"
    assert config.certificate_authority.path == str(account / "ca.crt")
    assert config.authorization() == "Bearer sa-token"
    assert config.ssl_context().verify_mode == ssl.CERT_REQUIRED
    (account / "token").write_text("rotated-token")
    os.utime(account / "token", ns=(2, 2))
    assert config.authorization() == "Bearer rotated-token"


def test_in_cluster_ipv6_service_host_is_bracketed(tmp_path: Path, ca: trustme.CA) -> None:
    account = fake_service_account(tmp_path / "sa", ca)
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}

    assert load_api_server_config("", environ=environ, service_account_dir=account).server == "https://[fd00::1]:6443"


def test_a_kubeconfig_wins_over_the_in_cluster_environment(tmp_path: Path, ca: trustme.CA) -> None:
    account = fake_service_account(tmp_path / "sa", ca)
    path = write_kubeconfig(tmp_path / "config", {"server": "https://prod:6443"}, {"token": "abc"})
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    assert load_api_server_config(str(path), environ=environ, service_account_dir=account).server == "https://prod:6443"


def test_without_kubeconfig_or_service_environment_there_is_no_api_server(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no API server configured: pass --kubeconfig"):
        load_api_server_config("", environ={}, service_account_dir=tmp_path)


def test_in_cluster_without_a_token_is_an_error(tmp_path: Path) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    with pytest.raises(KubeconfigError, match=f"in-cluster: no service-account token at {tmp_path}/token"):
        load_api_server_config("", environ=environ, service_account_dir=tmp_path)
