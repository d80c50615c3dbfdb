#!/usr/bin/env bash
# The machine image's own files, laid out by one script for docker/Dockerfile and the tests:
#
#   image-layout.sh assemble ROOT CATTY_BINARY
#       Puts catty at ROOT/usr/local/bin/catty, links catty-exec-runtime to it, copies the
#       image's HOME configuration (docker/home/) to ROOT/root and creates ROOT/workspace.
#       The Dockerfile runs it with ROOT=/.
#   image-layout.sh run ROOT [ARGS...]
#       Starts the runtime from ROOT the way the image does: through the catty-exec-runtime
#       name its ENTRYPOINT names, with its ENV (HOME, CATTY_WORKSPACE, CATTY_EXEC_ADDR),
#       every path moved under ROOT. Both are read from docker/Dockerfile, and a Dockerfile
#       that disagrees with this layout is an error. CATTY_EXEC_ADDR, CONNECT_TOKEN,
#       CATTY_AGENT and the rest come from the caller's environment as the daemon's would.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dockerfile=$here/Dockerfile

# Where the image keeps things.
BIN_DIR=/usr/local/bin
RUNTIME_LINK=$BIN_DIR/catty-exec-runtime
HOME_DIR=/root
WORKSPACE=/workspace

die() {
    echo "image-layout.sh: $*" >&2
    exit 1
}

assemble() {
    local root=${1:?usage: image-layout.sh assemble ROOT CATTY_BINARY}
    local binary=${2:?usage: image-layout.sh assemble ROOT CATTY_BINARY}
    root=${root%/}
    [ -x "$binary" ] || die "$binary is not an executable"
    install -D -m 0755 "$binary" "$root$BIN_DIR/catty"
    # A relative link: it stays right when ROOT is a directory and not the image's /.
    ln -sfn catty "$root$RUNTIME_LINK"
    mkdir -p "$root$HOME_DIR" "$root$WORKSPACE"
    cp -R "$here/home/." "$root$HOME_DIR/"
    # The agents keep keys next to these files: private, like the runtime writes them.
    find "$root$HOME_DIR/.claude.json" "$root$HOME_DIR/.claude" "$root$HOME_DIR/.codex" \
        "$root$HOME_DIR/.gemini" -type f -exec chmod 0600 {} +
    find "$root$HOME_DIR/.claude" "$root$HOME_DIR/.codex" "$root$HOME_DIR/.gemini" \
        -type d -exec chmod 0700 {} +
}

# The value the Dockerfile gives NAME in an ENV instruction (one NAME=value per line).
dockerfile_env() {
    sed -n "s/^\(ENV\)\{0,1\}[[:space:]]*$1=\([^[:space:]\\\\]*\).*/\2/p" "$dockerfile" | head -n 1
}

# The program of the Dockerfile's exec-form ENTRYPOINT.
dockerfile_entrypoint() {
    sed -n 's/^ENTRYPOINT[[:space:]]*\["\([^"]*\)".*/\1/p' "$dockerfile" | head -n 1
}

# Fails unless the Dockerfile says VALUE where this layout says EXPECTED.
agree() {
    [ "$2" = "$3" ] || die "docker/Dockerfile has $1 ${2:-(unset)}, the layout $3"
}

run() {
    local root=${1:?usage: image-layout.sh run ROOT [ARGS...]}
    shift
    root=${root%/}
    local entrypoint home workspace addr
    entrypoint=$(dockerfile_entrypoint)
    home=$(dockerfile_env HOME)
    workspace=$(dockerfile_env CATTY_WORKSPACE)
    addr=$(dockerfile_env CATTY_EXEC_ADDR)
    agree ENTRYPOINT "$entrypoint" "$RUNTIME_LINK"
    agree HOME "$home" "$HOME_DIR"
    agree CATTY_WORKSPACE "$workspace" "$WORKSPACE"
    [ -n "$addr" ] || die "docker/Dockerfile sets no CATTY_EXEC_ADDR"
    [ -x "$root$entrypoint" ] || die "$root$entrypoint is missing: run assemble first"
    export HOME=$root$home
    export CATTY_WORKSPACE=$root$workspace
    export CATTY_EXEC_ADDR=${CATTY_EXEC_ADDR:-$addr}
    export LANG=${LANG:-$(dockerfile_env LANG)}
    export PATH=$root$BIN_DIR:$PATH
    cd "$CATTY_WORKSPACE"
    # exec keeps the pid and stdout: callers read "listening on ADDR" from the runtime itself.
    exec "$root$entrypoint" "$@"
}

case ${1:-} in
assemble | run)
    command=$1
    shift
    "$command" "$@"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
