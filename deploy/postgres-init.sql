-- Roles and databases of the docker-compose.yml stack, run once by the postgres image on
-- an empty data volume (mounted into /docker-entrypoint-initdb.d/). The image's superuser
-- (POSTGRES_USER, `postgres`) is for the operator alone; nothing in the stack logs in as it.
--
--   aegis_owner  owns the aegis database and its schema; runs the migrations
--                (`aegis migrate`, database.migrate_url) and grants aegis_app what it needs
--   aegis_app    the running bot (database.url): owns nothing, may only add to and read
--                the audit trail (docs/operations.md, "PostgreSQL roles")
--   synapse      owns the synapse database, with the C collation Synapse requires
--
-- None is a superuser, nor may create databases or roles. Passwords come from the
-- container's environment (.env), read with psql's \getenv.

\set ON_ERROR_STOP on
\getenv aegis_owner_password AEGIS_OWNER_DB_PASSWORD
\getenv aegis_app_password AEGIS_APP_DB_PASSWORD
\getenv synapse_password SYNAPSE_DB_PASSWORD

CREATE ROLE aegis_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'aegis_owner_password';
CREATE ROLE aegis_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'aegis_app_password';
CREATE ROLE synapse LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'synapse_password';

CREATE DATABASE aegis OWNER aegis_owner ENCODING 'UTF8';
CREATE DATABASE synapse OWNER synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'
    TEMPLATE template0;

-- Each role connects to its own database only.
REVOKE ALL ON DATABASE aegis FROM PUBLIC;
REVOKE ALL ON DATABASE synapse FROM PUBLIC;
GRANT CONNECT ON DATABASE aegis TO aegis_owner, aegis_app;
GRANT CONNECT, TEMPORARY ON DATABASE synapse TO synapse;

-- In the aegis database only its owner creates objects; aegis_app gets its privileges
-- from the migration (storage/grants.py).
\connect aegis
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO aegis_app;
