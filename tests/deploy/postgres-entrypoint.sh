#!/bin/sh
# First start: initdb with the password of POSTGRES_PASSWORD_FILE (scram) and UTF8, as the
# official image (SQL_ASCII would hand the driver bytes), run the init SQL over the local
# socket only, stop; then exec the server (as the official image does).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" --username=postgres --pwfile="$POSTGRES_PASSWORD_FILE" \
    --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  for sql in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$sql" ] && psql -v ON_ERROR_STOP=1 -U postgres -f "$sql"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@"
