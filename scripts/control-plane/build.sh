#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager) from the Go module
# proxy into a cache directory outside the repository, and skips every binary that is already there
# at the requested version (a warm run takes seconds).
#
#   scripts/control-plane/build.sh            # build what is missing, print the bin directory
#   scripts/control-plane/build.sh --print-bin-dir   # only print where the binaries go
#
# Environment:
#   KUBEMETRICS_CACHE_DIR     cache root (default: $HOME/.cache/kubemetrics)
#   KUBEMETRICS_K8S_VERSION   k8s.io/kubernetes release (default: v1.34.4)
#   KUBEMETRICS_ETCD_VERSION  go.etcd.io/etcd/server/v3 release (default: v3.6.16)
#
# k8s.io/kubernetes cannot be built with `go install pkg@version`: its go.mod requires every staging
# module (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and maps them to ./staging/src with replace
# directives, which only apply inside the kubernetes repository itself. We therefore generate a
# scratch main module that requires k8s.io/kubernetes and replaces each staging module with its
# published v0.<minor>.<patch> tag. The list of staging modules is read from the served go.mod, so a
# new release that adds a staging module needs no edit here.
#
# The machine is shared: every compile runs under `nice -n 19` with `-p 2`.
set -euo pipefail

K8S_VERSION="${KUBEMETRICS_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${KUBEMETRICS_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${KUBEMETRICS_CACHE_DIR:-$HOME/.cache/kubemetrics}"
VERSION_DIR="$CACHE_ROOT/control-plane/$K8S_VERSION"
BIN_DIR="$VERSION_DIR/bin"
SRC_DIR="$VERSION_DIR/src"
TIMES_FILE="$VERSION_DIR/build-times.tsv"

# Never let `go` fetch a different toolchain behind our back; a dependency that needs a newer Go
# should fail loudly instead.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
GO_BUILD=(nice -n 19 go build -p 2 -trimpath)

log() { printf '[control-plane build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$BIN_DIR"
    exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBEMETRICS_K8S_VERSION must look like v1.34.4, got '$K8S_VERSION'"
K8S_MINOR="${BASH_REMATCH[1]}"
K8S_PATCH="${BASH_REMATCH[2]}"
STAGING_VERSION="v0.${K8S_MINOR}.${K8S_PATCH}"

mkdir -p "$BIN_DIR" "$SRC_DIR"

# Two builds of the same version at once (a `make` target and a test fixture) would only thrash the
# two cores; the second one waits and then finds the binaries in place.
exec 9>"$VERSION_DIR/.build.lock"
if ! flock -n 9; then
    log "another build of $K8S_VERSION is running; waiting for it"
    flock 9
fi

# A binary counts as present only if it runs and reports the expected version, so a truncated or
# mismatched file from an interrupted run is rebuilt.
has_binary() { # name expected-substring-of-version-output
    local path="$BIN_DIR/$1" output
    [[ -x "$path" ]] || return 1
    # Captured, not piped into `grep -q`: with pipefail, grep exiting at the first match makes the
    # binary die of SIGPIPE on its next line and the check fail at random.
    output=$("$path" --version 2>/dev/null) || return 1
    [[ "$output" == *"$2"* ]]
}

# Runs a build step, records its wall-clock time and moves the result into place atomically.
timed_build() { # name moduledir -- go build args...
    local name="$1" moddir="$2"
    shift 3
    local start end
    start=$(date +%s)
    # Explicit `|| return`: errexit is off when the caller tests this function in an `if`.
    (cd "$moddir" && "${GO_BUILD[@]}" -o "$BIN_DIR/.$name.tmp" "$@") || return 1
    end=$(date +%s)
    mv -f "$BIN_DIR/.$name.tmp" "$BIN_DIR/$name" || return 1
    printf '%s\t%s\t%ss\t%s\n' "$name" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((end - start))" "$(go env GOVERSION)" >>"$TIMES_FILE"
    log "built $name in $((end - start))s"
}

build_etcd_from_proxy() {
    local moddir="$SRC_DIR/etcd"
    rm -rf "$moddir" && mkdir -p "$moddir"
    # etcd's server/go.mod also carries relative replace directives, so it needs the same scratch
    # module treatment; its own dependencies (api/v3, client/v3, ...) are all published.
    cat >"$moddir/go.mod" <<EOF
module kubemetrics.local/control-plane/etcd

go 1.24
EOF
    (cd "$moddir" && nice -n 19 go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION") || return 1
    timed_build etcd "$moddir" -- \
        -ldflags "-s -w" \
        go.etcd.io/etcd/server/v3 || return 1
}

build_etcd() {
    local want="etcd Version: ${ETCD_VERSION#v}"
    if has_binary etcd "$want"; then
        log "etcd $ETCD_VERSION present"
        return
    fi
    if build_etcd_from_proxy; then
        return
    fi
    # Debian's etcd-server (3.4.x) works with kube-apiserver but lacks the watch-progress fixes the
    # apiserver probes for, so it is a fallback only.
    local debian_etcd
    debian_etcd=$(command -v etcd || true)
    [[ -n "$debian_etcd" ]] || die "etcd $ETCD_VERSION could not be built from the module proxy and no etcd is installed (apt-get install etcd-server)"
    log "WARNING: building etcd $ETCD_VERSION failed; using $debian_etcd ($("$debian_etcd" --version | head -1))"
    ln -sf "$debian_etcd" "$BIN_DIR/etcd"
}

# Writes the scratch module for k8s.io/kubernetes: require the release, replace every staging module
# listed in the served go.mod by its published tag, copy the `go` and `godebug` lines so runtime
# defaults match an upstream build.
prepare_kubernetes_module() {
    local moddir="$SRC_DIR/kubernetes"
    local upstream_gomod
    upstream_gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [[ -f "$upstream_gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION from $(go env GOPROXY)"

    local staging
    staging=$(sed -n 's|^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*$|\1|p' "$upstream_gomod")
    [[ -n "$staging" ]] || die "no staging replace directives found in $upstream_gomod"

    rm -rf "$moddir" && mkdir -p "$moddir"
    {
        echo "module kubemetrics.local/control-plane/kubernetes"
        echo
        grep -E '^(go|godebug) ' "$upstream_gomod"
        echo
        echo "require k8s.io/kubernetes $K8S_VERSION"
        echo
        echo "replace ("
        local module
        for module in $staging; do
            printf '\t%s => %s %s\n' "$module" "$module" "$STAGING_VERSION"
        done
        echo ")"
    } >"$moddir/go.mod"
    log "scratch module: $(wc -w <<<"$staging") staging modules replaced by $STAGING_VERSION"
    (cd "$moddir" && nice -n 19 go get \
        "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
        "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION") ||
        die "go get of kube-apiserver/kube-controller-manager $K8S_VERSION failed (a module missing from the proxy?)"
}

# The same -X flags hack/lib/version.sh sets, so /version and --version report the release instead
# of v0.0.0-master. The proxy does not tell us the release commit, so gitCommit stays empty; the
# build date is the release's publication time, which keeps the binaries reproducible.
kubernetes_ldflags() {
    local build_date
    build_date=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' |
        xargs sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
    local flags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
        flags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
    done
    echo "$flags"
}

build_kubernetes() {
    local want="Kubernetes $K8S_VERSION"
    local missing=()
    local name
    for name in kube-apiserver kube-controller-manager; do
        if has_binary "$name" "$want"; then
            log "$name $K8S_VERSION present"
        else
            missing+=("$name")
        fi
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0

    prepare_kubernetes_module
    local ldflags
    ldflags=$(kubernetes_ldflags)
    # One binary at a time: each gets its own timing, and the second reuses the first's compiled
    # packages from the Go build cache.
    for name in "${missing[@]}"; do
        log "building $name $K8S_VERSION (cold Go cache: several minutes; warm: seconds)"
        timed_build "$name" "$SRC_DIR/kubernetes" -- -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$name"
    done
}

build_etcd
build_kubernetes
echo "$BIN_DIR"
