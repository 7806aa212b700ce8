#!/usr/bin/env bash
# Starts a throw-away PostgreSQL and Redis (Debian packages, no Docker) on free loopback ports in a temporary
# directory, for the scale-out tests. Source it: it exports CALLBOX_TEST_DATABASE_URL, CALLBOX_TEST_REDIS_URL and
# the pids/dirs that `services_stop` (and the test helpers that stop and restart the engines) use.
# PostgreSQL refuses to run as root, so it runs as the `postgres` user.

services_install() {
  local need=()
  ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || need+=(postgresql)
  command -v redis-server > /dev/null || need+=(redis-server)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" > /dev/null
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

services_start() {
  services_install
  CALLBOX_SERVICES_DIR=$(mktemp -d /tmp/callbox-services.XXXXXX)
  chmod 755 "$CALLBOX_SERVICES_DIR"
  local pg_bin
  pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  export CALLBOX_PG_BIN=$pg_bin CALLBOX_PG_RUN=$CALLBOX_SERVICES_DIR/pgrun CALLBOX_SERVICES_DIR
  export CALLBOX_PG_DATA=$CALLBOX_PG_RUN/data
  export CALLBOX_PG_PORT=$(free_port) CALLBOX_REDIS_PORT=$(free_port)
  mkdir -p "$CALLBOX_PG_RUN" && chown postgres "$CALLBOX_PG_RUN"
  su postgres -s /bin/sh -c "$pg_bin/initdb -D $CALLBOX_PG_DATA --auth=trust -U postgres > $CALLBOX_PG_RUN/initdb.log 2>&1"
  pg_start
  su postgres -s /bin/sh -c "$pg_bin/psql -h 127.0.0.1 -p $CALLBOX_PG_PORT -U postgres -qc 'CREATE DATABASE callbox_test' > /dev/null"
  redis_start
  export CALLBOX_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$CALLBOX_PG_PORT/callbox_test"
  export CALLBOX_TEST_REDIS_URL="redis://127.0.0.1:$CALLBOX_REDIS_PORT/"
  echo "== PostgreSQL on 127.0.0.1:$CALLBOX_PG_PORT, Redis on 127.0.0.1:$CALLBOX_REDIS_PORT"
}

pg_start() {
  su postgres -s /bin/sh -c "$CALLBOX_PG_BIN/pg_ctl -D $CALLBOX_PG_DATA -l $CALLBOX_PG_RUN/pg.log -w \
    -o '-p $CALLBOX_PG_PORT -k $CALLBOX_PG_DATA -c listen_addresses=127.0.0.1 -c fsync=on' start > /dev/null"
}

pg_stop() {
  su postgres -s /bin/sh -c "$CALLBOX_PG_BIN/pg_ctl -D $CALLBOX_PG_DATA -m fast -w stop > /dev/null" || true
}

redis_start() {
  redis-server --bind 127.0.0.1 --port "$CALLBOX_REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --dir "$CALLBOX_SERVICES_DIR" --pidfile "$CALLBOX_SERVICES_DIR/redis.pid" --logfile "$CALLBOX_SERVICES_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$CALLBOX_REDIS_PORT" ping > /dev/null 2>&1 && return; sleep 0.1; done
}

redis_stop() {
  redis-cli -p "$CALLBOX_REDIS_PORT" shutdown nosave > /dev/null 2>&1 || true
}

services_stop() {
  [ -n "${CALLBOX_SERVICES_DIR:-}" ] || return 0
  redis_stop
  pg_stop
  rm -rf "$CALLBOX_SERVICES_DIR"
}
