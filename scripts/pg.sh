#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server on a private data directory and Unix socket, never the
# system cluster. initdb and pg_ctl refuse to run as root, so they run as `postgres`.
#
#   scripts/pg.sh start DIR   initialise DIR (if new), start, print the connection URI
#   scripts/pg.sh stop DIR    stop the server started in DIR
#   scripts/pg.sh uri DIR     print the connection URI of the server in DIR
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/pg_ctl" ] || { echo "pg.sh: PostgreSQL server not installed (scripts/install-deps.sh)" >&2; exit 2; }

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|uri DIR" >&2; exit 64; }
data="$dir/data"
port=54329  # only names the socket file: the server listens on no TCP port

uri() { echo "postgresql://postgres@/postgres?host=$dir&port=$port"; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
      as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log"
    fi
    as_postgres "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir' -p $port -c fsync=off -c max_connections=200" >/dev/null
    uri
    ;;
  stop)
    [ -f "$data/postmaster.pid" ] && as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    ;;
  uri) uri ;;
  *) echo "usage: pg.sh start|stop|uri DIR" >&2; exit 64 ;;
esac
