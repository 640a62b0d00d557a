#!/usr/bin/env bash
# Install (if missing) and start the services the test suite needs: a throwaway PostgreSQL
# cluster and postfix on loopback. Idempotent; writes $STATE/env for the tests to source.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STATE=${STATE:-/tmp/herald-ci}; mkdir -p "$STATE"
need=()
for p in postgresql postfix oathtool chromium; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  echo "services: installing ${need[*]}"
  apt-get update -q >/dev/null
  printf 'postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string localhost\n' | debconf-set-selections
  apt-get install -y -q "${need[@]}" >"$STATE/apt.log"
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); PGDIR=$STATE/pg; PGPORT=${PGPORT:-55432}
if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
  rm -rf "$PGDIR"; install -d -o postgres -g postgres "$PGDIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$STATE/initdb.log"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -o \
    "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGDIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
fi
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -Atqc "select 1 from pg_database where datname='herald'" | grep -q 1 || \
  psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "create database herald"
postconf -e "inet_interfaces = loopback-only" "inet_protocols = ipv4" "mynetworks = 127.0.0.0/8" \
  "mydestination = localhost, localhost.localdomain" "default_transport = discard:" "relay_transport = discard:" \
  "smtpd_relay_restrictions = permit_mynetworks, reject" "maillog_file = /var/log/postfix.log" "mailbox_size_limit = 0"
if postfix status >/dev/null 2>&1; then postfix reload >/dev/null 2>&1; else service postfix start >/dev/null 2>&1; fi
python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', 25, timeout=10).quit()"
cat >"$STATE/env" <<EOT
export HERALD_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PGPORT/herald
export HERALD_TEST_SMTP=127.0.0.1:25
export HERALD_CHROMIUM=/usr/bin/chromium
EOT
echo "services: postgresql on 127.0.0.1:$PGPORT, postfix on 127.0.0.1:25"
