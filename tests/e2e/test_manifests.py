"""A real kube-apiserver accepts every manifest (server-side dry run: schema, defaulting and admission,
nothing stored), and the RBAC they grant gives kubemetrics' service account exactly what it uses."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_plane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SERVICE_ACCOUNT = "system:serviceaccount:kube-system:kubemetrics"

BASE_OBJECTS = [
    "serviceaccount/kubemetrics",
    "clusterrole.rbac.authorization.k8s.io/system:aggregated-metrics-reader",
    "clusterrole.rbac.authorization.k8s.io/system:kubemetrics",
    "clusterrolebinding.rbac.authorization.k8s.io/system:kubemetrics",
    "rolebinding.rbac.authorization.k8s.io/kubemetrics-auth-reader",
    "clusterrolebinding.rbac.authorization.k8s.io/kubemetrics:system:auth-delegator",
    "service/kubemetrics",
    "deployment.apps/kubemetrics",
    "apiservice.apiregistration.k8s.io/v1beta1.metrics.k8s.io",
]
HA_OBJECTS = [*BASE_OBJECTS, "poddisruptionbudget.policy/kubemetrics"]

# Every file a user may apply on its own (the overlay's deployment patch is a fragment, not an object).
MANIFEST_FILES = {
    "components.yaml": BASE_OBJECTS,
    "high-availability.yaml": HA_OBJECTS,
    "base/rbac.yaml": BASE_OBJECTS[:6],
    "base/service.yaml": ["service/kubemetrics"],
    "base/deployment.yaml": ["deployment.apps/kubemetrics"],
    "base/apiservice.yaml": ["apiservice.apiregistration.k8s.io/v1beta1.metrics.k8s.io"],
    "high-availability/pdb.yaml": ["poddisruptionbudget.policy/kubemetrics"],
}


def applied_names(output: str) -> list[str]:
    """`kubectl apply -o name` output (one `kind.group/name` per line), sorted: kustomize reorders by kind."""
    return sorted(output.split())


def kustomize(directory: str) -> str:
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / directory)], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


@pytest.mark.parametrize("relative_path", sorted(MANIFEST_FILES))
def test_apiserver_accepts_manifest_file(control_plane: ControlPlane, relative_path: str) -> None:
    output = control_plane.kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", str(MANIFESTS / relative_path)
    ).stdout

    assert applied_names(output) == sorted(MANIFEST_FILES[relative_path])


@pytest.mark.parametrize(("directory", "expected"), [("base", BASE_OBJECTS), ("high-availability", HA_OBJECTS)])
def test_apiserver_accepts_kustomize_render(control_plane: ControlPlane, directory: str, expected: list[str]) -> None:
    output = control_plane.kubectl(
        "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=kustomize(directory)
    ).stdout

    assert applied_names(output) == sorted(expected)


def test_high_availability_deployment_as_the_apiserver_would_store_it(control_plane: ControlPlane) -> None:
    """Defaulting must not undo the overlay: two replicas, one may be down, never two on one node."""
    stored = control_plane.kubectl(
        "apply",
        "--dry-run=server",
        "-o",
        "jsonpath={range .items[?(@.kind=='Deployment')]}{.spec.replicas} "
        "{.spec.strategy.rollingUpdate.maxUnavailable} {.spec.strategy.rollingUpdate.maxSurge} "
        "{.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey}"
        "{end}",
        "-f",
        str(MANIFESTS / "high-availability.yaml"),
    ).stdout

    assert stored.split() == ["2", "1", "25%", "kubernetes.io/hostname"]


@pytest.fixture
def kubemetrics_rbac(control_plane: ControlPlane) -> Iterator[None]:
    """The RBAC objects really applied (deleted afterwards), so authorization can be asked about them."""
    rbac = str(MANIFESTS / "base" / "rbac.yaml")
    control_plane.kubectl("apply", "-f", rbac)
    try:
        yield
    finally:
        control_plane.kubectl("delete", "-f", rbac, "--ignore-not-found", "--wait=false")


def can_i(control_plane: ControlPlane, *args: str) -> str:
    # `auth can-i` exits 1 for "no"; the answer is on stdout either way.
    return control_plane.kubectl("auth", "can-i", *args, check=False).stdout.strip()


@pytest.mark.usefixtures("kubemetrics_rbac")
@pytest.mark.parametrize(
    ("request_args", "answer"),
    [
        (("get", "nodes", "--subresource=metrics"), "yes"),  # /metrics/resource
        (("get", "nodes", "--subresource=stats"), "yes"),  # /stats/summary
        (("list", "nodes"), "yes"),
        (("watch", "pods", "--all-namespaces"), "yes"),
        (("create", "tokenreviews.authentication.k8s.io"), "yes"),
        (("create", "subjectaccessreviews.authorization.k8s.io"), "yes"),
        (("-n", "kube-system", "get", "configmaps/extension-apiserver-authentication"), "yes"),
        (("get", "nodes", "--subresource=proxy"), "no"),
        (("-n", "kube-system", "get", "secrets"), "no"),
        (("-n", "default", "get", "configmaps"), "no"),
        (("patch", "nodes"), "no"),
    ],
)
def test_service_account_is_granted_what_kubemetrics_uses_and_no_more(
    control_plane: ControlPlane, request_args: tuple[str, ...], answer: str
) -> None:
    assert can_i(control_plane, *request_args, f"--as={SERVICE_ACCOUNT}") == answer


@pytest.mark.usefixtures("kubemetrics_rbac")
def test_metrics_reading_is_aggregated_into_the_view_role(control_plane: ControlPlane) -> None:
    """kube-controller-manager's clusterrole-aggregation folds system:aggregated-metrics-reader into `view`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rules = control_plane.kubectl("get", "clusterrole", "view", "-o", "jsonpath={.rules[*].apiGroups}").stdout
        if "metrics.k8s.io" in rules:
            break
        time.sleep(0.5)
    resources = control_plane.kubectl(
        "get",
        "clusterrole",
        "view",
        "-o",
        "jsonpath={range .rules[?(@.apiGroups[0]=='metrics.k8s.io')]}{.resources} {.verbs}{end}",
    ).stdout

    assert resources == '["pods","nodes"] ["get","list","watch"]'
