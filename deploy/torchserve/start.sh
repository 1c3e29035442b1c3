#!/usr/bin/env bash
# Start TorchServe in the foreground with the colourisation model store.
#
# The one way TorchServe is started: by the container image (ENTRYPOINT), by local runs and by tests.
#
# Environment:
#   MODEL_STORE      directory holding the .mar archives         (default: <repo>/model_store)
#   TS_CONFIG        TorchServe config.properties                 (default: <repo>/deploy/torchserve/config.properties)
#   TS_MODELS        archives to load at start: "all" (every *.mar directly in MODEL_STORE), "none",
#                    or a space-separated list of NAME.mar / NAME=NAME.mar entries  (default: all)
#   TS_BIND_ADDRESS  host to listen on instead of the one in TS_CONFIG, e.g. 0.0.0.0 in a container
#   TS_LOG_DIR       directory for TorchServe's logs              (default: ./logs)
#   TORCHSERVE       the torchserve executable       (default: torchserve on PATH, else <repo>/.venv/bin)
#   JAVA_HOME        Java 17+ to use (otherwise java on PATH)
#
# Extra arguments are passed to torchserve unchanged.
#
# The torchserve command runs Java as a child process and does not pass signals on to it, so this script
# stays in front: on SIGTERM/SIGINT it stops the Java server (graceful shutdown) and exits with its status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL_STORE="${MODEL_STORE:-$ROOT/model_store}"
TS_CONFIG="${TS_CONFIG:-$ROOT/deploy/torchserve/config.properties}"
TS_MODELS="${TS_MODELS:-all}"
TS_BIND_ADDRESS="${TS_BIND_ADDRESS:-}"
# torchserve from PATH, else from the repository's virtualenv.
if [[ -z "${TORCHSERVE:-}" ]]; then
    TORCHSERVE="$(command -v torchserve || echo "$ROOT/.venv/bin/torchserve")"
fi

die() {
    echo "start.sh: $*" >&2
    exit 1
}

# --- Java 17 or newer ------------------------------------------------------------------------------
if [[ -n "${JAVA_HOME:-}" ]]; then
    JAVA="$JAVA_HOME/bin/java"
else
    JAVA="$(command -v java || true)"
fi
[[ -n "$JAVA" && -x "$JAVA" ]] || die "Java not found. TorchServe 0.12 needs Java 17 or newer: install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
java_version="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
java_major="${java_version%%.*}"
[[ "$java_major" == "1" ]] && java_major="$(echo "$java_version" | cut -d. -f2)"  # 1.8.0_x -> 8
if ! [[ "$java_major" =~ ^[0-9]+$ ]] || (( java_major < 17 )); then
    die "TorchServe 0.12 needs Java 17 or newer; $JAVA reports version '${java_version:-unknown}'."
fi

# --- TorchServe and its inputs ---------------------------------------------------------------------
command -v "$TORCHSERVE" > /dev/null || die "'$TORCHSERVE' not found: pip install '.[serve]' (torchserve==0.12.0)."
[[ -f "$TS_CONFIG" ]] || die "TS_CONFIG '$TS_CONFIG' does not exist."
[[ -d "$MODEL_STORE" ]] || die "MODEL_STORE '$MODEL_STORE' is not a directory."

# TorchServe keeps its pid file in the temp directory and its logs under the working directory.
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/torchserve.XXXXXX")"
export TMPDIR="$RUN_DIR" TEMP="$RUN_DIR"
export LOG_LOCATION="${TS_LOG_DIR:-${LOG_LOCATION:-$PWD/logs}}"
export METRICS_LOCATION="${METRICS_LOCATION:-$LOG_LOCATION}"
mkdir -p "$LOG_LOCATION"

config="$TS_CONFIG"
if [[ -n "$TS_BIND_ADDRESS" ]]; then
    # Same ports, another host: http://127.0.0.1:8080 -> http://0.0.0.0:8080, grpc_*_address=0.0.0.0.
    config="$RUN_DIR/config.properties"
    sed -E \
        -e "s#^([a-z_]+_address=https?://)[^:/]+#\\1${TS_BIND_ADDRESS}#" \
        -e "s#^(grpc_[a-z]+_address=).*#\\1${TS_BIND_ADDRESS}#" \
        "$TS_CONFIG" > "$config"
fi

models=()
if [[ "$TS_MODELS" == "all" ]]; then
    # TorchServe's own "all" would also load every sub-directory (weights/ among them) as a model.
    for mar in "$MODEL_STORE"/*.mar; do
        [[ -f "$mar" ]] && models+=("$(basename "$mar")")
    done
elif [[ "$TS_MODELS" != "none" ]]; then
    read -r -a models <<< "$TS_MODELS"
fi
args=(--start --foreground --ncs --disable-token-auth --enable-model-api
      --ts-config "$config" --model-store "$MODEL_STORE")
if (( ${#models[@]} > 0 )); then
    args+=(--models "${models[@]}")
else
    echo "start.sh: no archives to load from $MODEL_STORE; register them through the management API" >&2
fi
args+=("$@")

echo "start.sh: torchserve ${args[*]}" >&2
"$TORCHSERVE" "${args[@]}" &
ts_pid=$!

# shellcheck disable=SC2329  # called by the trap below
stop() {
    echo "start.sh: stopping TorchServe" >&2
    # Terminates the Java frontend (it shuts its workers down) and waits up to 60 s for it.
    "$TORCHSERVE" --stop --foreground > /dev/null 2>&1 || kill -TERM "$ts_pid" 2> /dev/null || true
}
trap stop TERM INT

status=0
while true; do
    wait "$ts_pid" && status=0 || status=$?
    # wait returns early (status > 128) when a trapped signal arrives; go on waiting for TorchServe.
    kill -0 "$ts_pid" 2> /dev/null || break
done
rm -rf "$RUN_DIR"
exit "$status"
