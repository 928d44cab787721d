#!/usr/bin/env bash
# Make sure the services the test suite needs are installed and running:
# PostgreSQL (127.0.0.1:5432, trust auth, database "test"), Redis (127.0.0.1:6379),
# Debian's Chromium for the browser tests and wrk for make bench. Safe to run repeatedly.
# With CI=true any service that cannot be brought up fails this script.
set -uo pipefail

failed=0
apt_updated=0
say() { printf '[services] %s\n' "$*"; }

apt_install() {
    command -v apt-get >/dev/null || return 1
    if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null && apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! command -v pg_isready >/dev/null; then apt_install postgresql postgresql-client || true; fi
if ! postgres_up; then
    say "starting PostgreSQL"
    if ls /etc/postgresql >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    fi
    for _ in $(seq 1 30); do postgres_up && break; sleep 1; done
fi
if postgres_up; then
    psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test" || true
    say "PostgreSQL is up"
else
    say "PostgreSQL is NOT available on 127.0.0.1:5432"; failed=1
fi

if ! command -v redis-server >/dev/null; then apt_install redis-server || true; fi
if ! redis_up; then
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
fi
if redis_up; then say "Redis is up"; else say "Redis is NOT available on 127.0.0.1:6379"; failed=1; fi

if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian chromium for the browser tests"
    apt_install chromium || true
fi
if [ -x /usr/bin/chromium ]; then say "Chromium: $(/usr/bin/chromium --version 2>/dev/null)"; else say "Chromium is NOT installed"; failed=1; fi

# make bench drives the one-event endpoint with wrk, a load generator that is not the bottleneck.
if ! command -v wrk >/dev/null; then
    say "installing Debian wrk for make bench"
    apt_install wrk || true
fi
if command -v wrk >/dev/null; then say "wrk is installed"; else say "wrk is NOT installed (make bench needs it)"; fi

if [ "$failed" = 1 ] && [ "${CI:-}" = "true" ]; then
    say "a required service is missing and CI=true: failing"
    exit 1
fi
exit 0
