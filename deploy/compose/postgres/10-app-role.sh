#!/usr/bin/env bash
# First start only (docker-entrypoint-initdb.d): the application role the services log in as
# (no superuser, owns nothing; the migrate job grants it data access) and Keycloak's database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$(cat "$CASESHARE_APP_PASSWORD_FILE")" \
  -v keycloak_password="$(cat "$KEYCLOAK_DB_PASSWORD_FILE")" <<'SQL'
CREATE ROLE caseshare_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE ROLE keycloak LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'keycloak_password';
CREATE DATABASE keycloak OWNER keycloak;
SQL
