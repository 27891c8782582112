"""fakesnow's server with one fix, run by the Snowflake emulator's virtualenv (`python -m` this file).

dlt sends several statements in one request (its CREATE/ALTER TABLE batches, `num_statements=0`),
which Snowflake runs one after another. fakesnow 0.12.1's server parses only the first and then
fails describing the whole text ("syntax error at or near CREATE"). Here a request of several
statements runs as one request per statement, in order, stopping at the first failure; the last
answer is the reply.

dlt's PUT names its target stage as a string literal (`PUT 'file://...' '@"DS"."%TABLE"/"load"'`),
which Snowflake accepts; fakesnow 0.12.1 takes the quotes for part of the name ("does not start
with @"). Here the quotes are taken off first.

dlt separates COPY INTO's FILE_FORMAT options with commas, as Snowflake allows; sqlglot 30.22 reads
each comma as an empty SequenceProperties, which fakesnow's option parser rejects (an assertion).
Here those empty nodes are skipped. dlt also quotes MATCH_BY_COLUMN_NAME's value
(`'CASE_INSENSITIVE'`), as Snowflake allows; fakesnow takes only the bare word, so the quotes go.
fakesnow loads JSON files only into one VARIANT column; dlt loads its own tables (the pipeline
state) from JSON with MATCH_BY_COLUMN_NAME, which Snowflake supports. Here such a COPY inserts the
file's fields into the table's columns of the same names (DuckDB's INSERT ... BY NAME).
Nothing else of fakesnow is changed.

Usage: python snowflake_server.py PORT (its databases live in memory, shared by every session)
"""

from __future__ import annotations

import gzip
import json
import sys
from typing import Any

import fakesnow.copy_into as fakesnow_copy_into
import fakesnow.server as fakesnow_server
import fakesnow.transforms as fakesnow_transforms
import sqlglot
import uvicorn
from sqlglot import exp
from sqlglot.tokens import TokenType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

QUERY_PATH = "/queries/v1/query-request"


def statements(sql: str) -> list[str]:
    """The statements of `sql`, split at its top-level semicolons (never inside a string)."""
    cuts = [t.start for t in sqlglot.tokenize(sql, read="snowflake") if t.token_type == TokenType.SEMICOLON]
    parts, start = [], 0
    for cut in cuts:
        parts.append(sql[start:cut])
        start = cut + 1
    parts.append(sql[start:])
    return [part.strip() for part in parts if part.strip()]


_put_stage = fakesnow_transforms.put_stage


def put_stage(expression: exp.Expr, *args: Any, **kwargs: Any) -> exp.Expr:
    """fakesnow's PUT, its target stage unquoted when given as a string literal."""
    target = expression.args.get("target") if isinstance(expression, exp.Put) else None
    text = target.text("this") if isinstance(target, exp.Var) else ""
    if len(text) > 1 and text[0] == text[-1] == "'":
        expression = expression.copy()
        expression.set("target", exp.Var(this=text[1:-1]))
    return _put_stage(expression, *args, **kwargs)


_parse_options = fakesnow_copy_into.parse_options


def parse_options(properties: Any) -> dict[str, Any]:
    """fakesnow's option parser without the empty nodes sqlglot makes of separating commas."""
    return _parse_options([p for p in properties if not (isinstance(p, exp.SequenceProperties) and not p.expressions)])


_copy_params = fakesnow_copy_into._params


def copy_params(expression: exp.Copy, *args: Any, **kwargs: Any) -> Any:
    """fakesnow's COPY INTO parameters, a quoted MATCH_BY_COLUMN_NAME value read as the bare word."""
    expression = expression.copy()
    for param in expression.args.get("params") or []:
        value = param.args.get("expression")
        if param.this.name.upper() == "MATCH_BY_COLUMN_NAME" and isinstance(value, exp.Literal):
            param.set("expression", exp.Var(this=value.name))
    return _copy_params(expression, *args, **kwargs)


_inserts = fakesnow_copy_into._inserts


def inserts(expression: exp.Copy, params: Any, urls: list[str], *args: Any, **kwargs: Any) -> list[exp.Expr]:
    """fakesnow's INSERTs for a COPY, and for JSON matched by column name one INSERT BY NAME a file."""
    matching = params.match_by_column_name != fakesnow_copy_into.MatchByColumnName.NONE
    if not (isinstance(params.file_format, fakesnow_copy_into.ReadJSON) and matching):
        return list(_inserts(expression, params, urls, *args, **kwargs))
    return [
        exp.Insert(
            this=expression.this,
            expression=exp.select("*").from_(exp.Table(this=exp.func("read_ndjson_auto", exp.Literal.string(url)))),
            by_name=True,
        )
        for url in urls
    ]


def with_body(request: Request, body: dict[str, Any]) -> Request:
    """A copy of `request` carrying `body` as plain JSON."""
    data = json.dumps(body).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")]
    scope = {**request.scope, "headers": [*headers, (b"content-length", str(len(data)).encode())]}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return Request(scope, receive)


async def query_request(request: Request) -> Response:
    raw = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    body = json.loads(raw)
    parts = statements(body["sqlText"]) if not body.get("bindings") else [body["sqlText"]]
    response: Response | None = None
    for part in parts or [body["sqlText"]]:
        response = await fakesnow_server.query_request(with_body(request, {**body, "sqlText": part}))
        if not json.loads(bytes(response.body)).get("success"):
            break
    assert response is not None
    return response


def app() -> Starlette:
    routes = [
        Route(QUERY_PATH, query_request, methods=["POST"]) if getattr(r, "path", "") == QUERY_PATH else r
        for r in fakesnow_server.routes
    ]
    return Starlette(routes=routes)


def main() -> None:
    fakesnow_transforms.put_stage = put_stage
    fakesnow_copy_into.parse_options = parse_options
    fakesnow_copy_into._params = copy_params
    fakesnow_copy_into._inserts = inserts
    port = int(sys.argv[1])
    uvicorn.run(app(), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
