# Shared by the bench scripts (source it): a scratch directory and a list of server pids that are cleaned up on
# exit, and `wait_url`, which reads the URL a server announces.

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Raises this shell's open-file limit to the hard limit (the servers and load generator it starts inherit it) and
# sets FILES to it (a number, also when the limit is unlimited).
raise_open_files() {
  ulimit -n "$(ulimit -Hn)"
  FILES=$(ulimit -n)
  [ "$FILES" = unlimited ] && FILES=1048576
  return 0
}

# Waits for the {"event":"listening","url":...} line a server prints on stdout (file X.out, its stderr in X.err);
# echoes the URL.
wait_url() {
  local file=$1
  for _ in $(seq 1 200); do
    if grep -q '"listening"' "$file" 2> /dev/null; then
      sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$file" | head -n 1
      return 0
    fi
    sleep 0.05
  done
  echo "server did not start: $file" >&2
  cat "${file%.out}.err" >&2 || true
  return 1
}

# Builds the release server and load generator and installs the node-ws peer's packages (realtime.sh, calls.sh);
# sets LOADGEN.
build_realtime_bench() {
  echo "== building release binaries" >&2
  cargo build --release --locked -p callbox -p callbox-loadgen >&2
  LOADGEN=$TARGET_DIR/release/callbox-loadgen
  if [ ! -d bench/peers/node-ws/node_modules ]; then
    echo "== npm ci (node-ws peer)" >&2
    (cd bench/peers/node-ws && npm ci --no-audit --no-fund >&2)
  fi
}

# The 1-minute load average, printed beside each step.
load() { cut -d' ' -f1 /proc/loadavg; }

# step NAME ARGS...: one load-generator run ($LOADGEN ARGS), its JSON in $RUN/NAME.json, the load when it started
# in $RUN/NAME.load.
step() {
  local name=$1
  shift
  echo "== $name (load $(load))" >&2
  load > "$RUN/$name.load"
  "$LOADGEN" "$@" --out "$RUN/$name.json" > /dev/null
}
