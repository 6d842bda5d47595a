#!/usr/bin/env bash
# Builds the upstream metrics-server (sigs.k8s.io/metrics-server) from the Go module proxy, for the
# differential conformance tests, into a cache directory outside the repository. A binary already in
# place at the requested version is reused (a warm run takes well under a second).
#
#   scripts/metrics-server/build.sh [VERSION]                  # build if missing; last stdout line: the binary
#   scripts/metrics-server/build.sh --print-binary [VERSION]   # only print where the binary goes
#
# VERSION defaults to v0.8.0 (v0.9.0 is served by the proxy too). The binary goes to
#   ${KUBEMETRICS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubemetrics}/metrics-server/<VERSION>/bin/metrics-server
# Go's own module and build caches stay where `go env` puts them, so a rebuild after wiping our cache
# directory only re-links.
#
# metrics-server's go.mod has no replace directives, so one plain scratch module is enough: it records
# the command as a `tool` dependency (`go get -tool`), which pins every dependency at the versions the
# release's go.mod selects, exactly as an upstream build resolves them. The scratch module copies the
# release's `go` and `godebug` lines so runtime defaults match an upstream build.
#
# The machine is shared: the compile runs under `nice -n 19` with `-p 2`, and a lock file makes a second
# concurrent build of the same version wait for the first.
set -euo pipefail

MODULE="sigs.k8s.io/metrics-server"
COMMAND="$MODULE/cmd/metrics-server"
DEFAULT_VERSION="v0.8.0"

print_only=false
if [[ "${1:-}" == "--print-binary" ]]; then
    print_only=true
    shift
fi
VERSION="${1:-$DEFAULT_VERSION}"

CACHE_ROOT="${KUBEMETRICS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubemetrics}"
VERSION_DIR="$CACHE_ROOT/metrics-server/$VERSION"
BIN_DIR="$VERSION_DIR/bin"
BINARY="$BIN_DIR/metrics-server"
SRC_DIR="$VERSION_DIR/src"
TIMES_FILE="$VERSION_DIR/build-times.tsv"

# Never let `go` download a different toolchain: a release that needs a newer Go than the installed one
# should fail loudly, not fetch a compiler.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# Upstream's release build is static (CGO_ENABLED=0 in its Makefile); so is ours.
export CGO_ENABLED=0

log() { printf '[metrics-server build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "VERSION must look like v0.8.0, got '$VERSION'"

if $print_only; then
    echo "$BINARY"
    exit 0
fi

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$BIN_DIR" "$SRC_DIR"

exec 9>"$VERSION_DIR/.build.lock"
if ! flock -n 9; then
    log "another build of metrics-server $VERSION is running; waiting for it"
    flock 9
fi

# Present means: it runs and `--version` prints exactly the requested release (we stamp it below), so a
# truncated file left by an interrupted run, or one built from another release, is rebuilt.
has_binary() {
    [[ -x "$BINARY" ]] || return 1
    local output
    output=$("$BINARY" --version 2>/dev/null) || return 1
    [[ "$output" == "$VERSION" ]]
}

if has_binary; then
    log "metrics-server $VERSION present"
    echo "$BINARY"
    exit 0
fi

# The release's go.mod and publication time, straight from the module proxy.
download_json=$(go mod download -json "$MODULE@$VERSION") ||
    die "could not download $MODULE@$VERSION from $(go env GOPROXY)"
upstream_gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$download_json")
upstream_info=$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"$download_json")
[[ -f "$upstream_gomod" ]] || die "the proxy answered for $MODULE@$VERSION but gave no go.mod"
grep -q '^replace' "$upstream_gomod" &&
    log "WARNING: $MODULE@$VERSION has replace directives; a scratch module ignores them"
build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$upstream_info" 2>/dev/null || true)

moddir="$SRC_DIR/module"
rm -rf "$moddir" && mkdir -p "$moddir"
{
    echo "module kubemetrics.local/conformance/metrics-server"
    echo
    grep -E '^(go|godebug) ' "$upstream_gomod"
} >"$moddir/go.mod"

start=$(date +%s)
(cd "$moddir" && nice -n 19 go get -tool "$COMMAND@$VERSION") ||
    die "go get -tool $COMMAND@$VERSION failed (a module missing from the proxy, or a Go newer than $(go env GOVERSION) needed?)"
fetched=$(date +%s)
log "scratch module ready in $((fetched - start))s; building $COMMAND $VERSION (cold Go cache: minutes)"

# The same version stamping as upstream's Makefile (on k8s.io/client-go/pkg/version), so `--version`
# and the `metrics_server_build_info`-style version fields report the release. The proxy does not record
# the release commit, so gitCommit stays empty; the build date is the release's publication time,
# which keeps the binary reproducible.
pkg="k8s.io/client-go/pkg/version"
ldflags="-s -w -X $pkg.gitVersion=$VERSION -X $pkg.gitCommit= -X $pkg.gitTreeState=clean"
ldflags+=" -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"

(cd "$moddir" && nice -n 19 go build -p 2 -trimpath -ldflags "$ldflags" -o "$BIN_DIR/.metrics-server.tmp" "$COMMAND") ||
    die "go build of $COMMAND $VERSION failed"
end=$(date +%s)
mv -f "$BIN_DIR/.metrics-server.tmp" "$BINARY"
has_binary || die "$BINARY was built but \`--version\` does not print $VERSION"
printf 'metrics-server\t%s\t%ss\t%ss\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((fetched - start))" "$((end - fetched))" \
    "$(go env GOVERSION)" >>"$TIMES_FILE"
log "built metrics-server $VERSION in $((end - start))s (go get $((fetched - start))s, go build $((end - fetched))s)"
echo "$BINARY"
