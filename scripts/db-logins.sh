#!/usr/bin/env bash
# Gives each service a login of its own (docs/deployment.md, "Database roles and logins"). Run it as the
# owner of the database (the login `make migrate` uses), after the migrations, with psql on the PATH:
#
#   DATABASE_URL=postgres://OWNER:...@HOST/upi \
#   COMMAND_DB_PASSWORD=... CONSUMERS_DB_PASSWORD=... QUERY_DB_PASSWORD=... scripts/db-logins.sh
#
# It creates (or updates the password of) one login per service and makes it a member of the service's
# role, created by the migrations: a login can then do nothing but SET ROLE to that role. Login names
# default to upi_command_login, upi_consumers_login and upi_query_login (COMMAND_DB_USER etc.). It is safe
# to run again, for example to change a password.
set -euo pipefail
: "${DATABASE_URL:?the connection URL of the database owner}"
: "${COMMAND_DB_PASSWORD:?}" "${CONSUMERS_DB_PASSWORD:?}" "${QUERY_DB_PASSWORD:?}"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q \
  -v command_user="${COMMAND_DB_USER:-upi_command_login}" -v command_pw="$COMMAND_DB_PASSWORD" \
  -v consumers_user="${CONSUMERS_DB_USER:-upi_consumers_login}" -v consumers_pw="$CONSUMERS_DB_PASSWORD" \
  -v query_user="${QUERY_DB_USER:-upi_query_login}" -v query_pw="$QUERY_DB_PASSWORD" <<'SQL'
select format('create role %I login', u) from (values (:'command_user'), (:'consumers_user'), (:'query_user')) v(u)
 where not exists (select from pg_roles where rolname = u) \gexec
select format('alter role %I login nosuperuser nocreatedb nocreaterole password %L', u, p)
  from (values (:'command_user', :'command_pw'), (:'consumers_user', :'consumers_pw'), (:'query_user', :'query_pw')) v(u, p) \gexec
select format('grant %I to %I', r, u)
  from (values ('upi_command', :'command_user'), ('upi_consumers', :'consumers_user'), ('upi_query', :'query_user')) v(r, u) \gexec
SQL
echo "logins ready: ${COMMAND_DB_USER:-upi_command_login}, ${CONSUMERS_DB_USER:-upi_consumers_login}, ${QUERY_DB_USER:-upi_query_login}"
