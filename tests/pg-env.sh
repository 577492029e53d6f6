#!/bin/sh
# A throwaway PostgreSQL server for the tests: initdb + pg_ctl into a fresh
# directory, listening on a free loopback port, trust auth, no fsync (the
# tests kill processes, not the machine). As root the server runs as the
# "postgres" user (or "nobody"), which PostgreSQL requires.
#
#   eval "$(sh tests/pg-env.sh start)"   sets PGDIR, PGURL and PSQL
#   sh tests/pg-env.sh stop|down|up|restart "$PGDIR"
#   sh tests/pg-env.sh check             exit 3 when PostgreSQL is missing
#
# down/up stop the server and start it again on the same port and data.
# Exit status 3 from start: no PostgreSQL server binaries are installed.
set -eu

bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

B=$(bindir)
if [ -z "$B" ] || [ ! -x "$B/pg_ctl" ]; then
	echo "pg-env: no PostgreSQL server binaries (Debian package postgresql)" >&2
	exit 3
fi

as_owner() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid="$(cat "$PGDIR/owner")" --regid="$(cat "$PGDIR/group")" \
			--clear-groups "$@"
	else
		"$@"
	fi
}

pg_start() {
	as_owner "$B/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 30 \
		-o "-p $(cat "$PGDIR/port") -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
		start >/dev/null
}

case "${1:-}" in
check) ;;
start)
	PGDIR=$(mktemp -d /tmp/pp-pg.XXXXXX)
	if [ "$(id -u)" = 0 ]; then
		user=postgres
		getent passwd postgres >/dev/null || user=nobody
		id -u "$user" >"$PGDIR/owner"
		id -g "$user" >"$PGDIR/group"
		chown "$user" "$PGDIR"
	fi
	as_owner "$B/initdb" -D "$PGDIR/data" -A trust -U pushpool -E UTF8 --no-sync \
		--no-instructions >"$PGDIR/initdb.log" 2>&1 || {
		cat "$PGDIR/initdb.log" >&2
		exit 1
	}
	# A random port, again if that one is taken.
	tries=0
	while :; do
		echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000)) >"$PGDIR/port"
		pg_start 2>/dev/null && break
		tries=$((tries + 1))
		if [ $tries -ge 5 ]; then
			cat "$PGDIR/server.log" >&2
			exit 1
		fi
	done
	echo "PGDIR=$PGDIR"
	echo "PGURL=postgresql://pushpool@127.0.0.1:$(cat "$PGDIR/port")/postgres"
	# The client of the server's own version, called directly: Debian's
	# /usr/bin/psql is a Perl wrapper that costs about 50 ms of CPU a call
	# (9 ms direct), which a test polling the store takes from the
	# processes it measures.
	echo "PSQL=$B/psql"
	;;
stop)
	PGDIR=$2
	[ -f "$PGDIR/data/postmaster.pid" ] && as_owner "$B/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$PGDIR"
	;;
down)
	PGDIR=$2
	as_owner "$B/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
	;;
up)
	PGDIR=$2
	pg_start
	;;
restart)
	PGDIR=$2
	as_owner "$B/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
	pg_start
	;;
*)
	echo "usage: pg-env.sh check | start | stop|down|up|restart PGDIR" >&2
	exit 64
	;;
esac
