"""Least privilege on PostgreSQL: the token store under a role owning one schema, the warehouse under
another, neither a superuser, each unable to read the other's tables."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from approvalmax_pipeline.sources.oauth_tokens import new_key

from ..conftest import Workspace

TOKENS, WAREHOUSE = "am_tokens", "am_warehouse"


def as_role(dsn: str, role: str) -> str:
    """The DSN for `role` (the test server trusts loopback connections; dlt wants a password)."""
    return dsn.replace("postgres:postgres@", f"{role}:unused@", 1)


def execute(dsn: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run the statements in order; the last one's rows."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    rows: list[tuple[Any, ...]] = []
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()
    return rows


def refused(dsn: str, sql: str) -> bool:
    try:
        execute(dsn, sql)
    except psycopg2.errors.InsufficientPrivilege:
        return True
    return False


@pytest.fixture
def roles(postgres_db: str) -> str:
    """Two non-superuser roles in a fresh database: the token store's, owning only its schema, and the
    warehouse's, which may create schemas (dlt makes its dataset's). PUBLIC loses CREATE on public."""
    database = postgres_db.rsplit("/", 1)[1]
    execute(
        postgres_db,
        *(f"DROP ROLE IF EXISTS {role}" for role in (TOKENS, WAREHOUSE)),
        f"CREATE ROLE {TOKENS} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
        f"CREATE ROLE {WAREHOUSE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
        f"CREATE SCHEMA {TOKENS} AUTHORIZATION {TOKENS}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC',
        f'GRANT CONNECT ON DATABASE "{database}" TO {TOKENS}',
        f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO {WAREHOUSE}',
    )
    return postgres_db


def test_the_token_role_and_the_warehouse_role_are_enough_and_cannot_read_each_other(ws: Workspace, roles: str) -> None:
    tokens_dsn, warehouse_dsn = as_role(roles, TOKENS), as_role(roles, WAREHOUSE)
    env = {
        "SOURCES__APPROVALMAX__TOKEN_STORE": tokens_dsn,
        "SOURCES__APPROVALMAX__TOKEN_KEY": new_key(),
        "DESTINATION__POSTGRES__CREDENTIALS": warehouse_dsn,
    }
    result = ws.cli("run", "--no-progress", "--destination", "postgres", "--resource", "companies", env=env)
    assert result.returncode == 0, result.stderr
    # the store made its table in the token role's own schema, and the load made its dataset, each as its role
    assert execute(roles, "SELECT schemaname, tableowner FROM pg_tables WHERE tablename = 'oauth_token_store'") == [
        (TOKENS, TOKENS)
    ]
    assert execute(
        roles, "SELECT tableowner FROM pg_tables WHERE schemaname = 'approvalmax' AND tablename = 'companies'"
    ) == [(WAREHOUSE,)]
    assert refused(warehouse_dsn, f"SELECT * FROM {TOKENS}.oauth_token_store")
    assert refused(tokens_dsn, "SELECT * FROM approvalmax.companies")
    assert refused(tokens_dsn, "CREATE TABLE public.intruder (x int)")
    assert execute(
        roles, f"SELECT count(*) FROM pg_roles WHERE rolname IN ('{TOKENS}', '{WAREHOUSE}') AND NOT rolsuper"
    ) == [(2,)]
