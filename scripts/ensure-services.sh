#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis servers the tests use answer on 127.0.0.1.
# Starts them when they are installed but stopped; says what to install when they are missing.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for NAME CHECK
  for _ in $(seq 1 30); do "$2" && return 0; sleep 1; done
  echo "ensure-services: $1 did not come up within 30 s" >&2
  return 1
}

status=0
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    wait_for PostgreSQL pg_up || status=1
  else
    echo "ensure-services: PostgreSQL is not running on 127.0.0.1:5432 and is not installed." >&2
    echo "  Install it (Debian: apt-get install postgresql) with trust auth for user postgres," >&2
    echo "  or point FCR_TEST_PG_URL at a server you have." >&2
    status=1
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "ensure-services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_for Redis redis_up || status=1
  else
    echo "ensure-services: Redis is not running on 127.0.0.1:6379 and is not installed." >&2
    echo "  Install it (Debian: apt-get install redis-server)." >&2
    status=1
  fi
fi
exit $status
