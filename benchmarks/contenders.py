"""What `make bench` times, each run as its own process: `python -m benchmarks.contenders NAME`.

Settings come from the environment the harness sets: BENCH_URL (the sandbox), BENCH_TOKEN (an
access token), BENCH_DIR (a working folder), BENCH_CONCURRENCY.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES, PAGE_LIMIT, USER_PROFILES_PATH


def floor() -> None:
    """Download and JSON-parse every page, with the pipeline's concurrency; nothing else.

    Each thread has a client of its own, as the pipeline's request slots do: 32 threads sharing one
    client's pool took 10.4 s against 7.4-7.7 s over 1,000 organisations. With
    BENCH_PARTS, this process takes only every BENCH_PARTS-th company from BENCH_PART on
    (`floor_processes`)."""
    url, token = os.environ["BENCH_URL"], os.environ["BENCH_TOKEN"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    part, parts = int(os.environ.get("BENCH_PART", "0")), int(os.environ.get("BENCH_PARTS", "1"))
    clients: list[httpx.Client] = []
    local = threading.local()

    def client() -> httpx.Client:
        mine: httpx.Client | None = getattr(local, "client", None)
        if mine is None:
            mine = local.client = httpx.Client(base_url=url, headers=headers, timeout=60)
            clients.append(mine)
        return mine

    def get(path: str, params: dict[str, Any]) -> httpx.Response:
        # a dropped keep-alive connection is asked again, as any client would (32 threads at once
        # met one now and then)
        for attempt in range(3):
            try:
                return client().get(path, params=params)
            except httpx.TransportError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def fetch(job: tuple[str, str]) -> int:
        company, path = job
        if path == USER_PROFILES_PATH:
            get(f"/api/v1/companies/{company}/{path}", {}).json()
            return 0
        count, token_ = 0, None
        while True:
            params: dict[str, Any] = {"limit": PAGE_LIMIT}
            if token_:
                params["continuationToken"] = token_
            body = get(f"/api/v1/companies/{company}/{path}", params).json()
            count += len(body["payload"])
            token_ = body.get("continuationToken")
            if not token_:
                return count

    companies = get("/api/v1/companies", {}).json()[part::parts]
    # each company's user profiles in the same pool as its document lists, as the pipeline asks
    paths = [*(d.path for d in DOCUMENT_TYPES), USER_PROFILES_PATH]
    jobs = [(c["companyId"], path) for c in companies for path in paths]
    with ThreadPoolExecutor(int(os.environ.get("BENCH_CONCURRENCY", "4"))) as pool:
        total = sum(pool.map(fetch, jobs))
    for each in clients:
        each.close()
    print(f"documents={total}")


def floor_processes() -> None:
    """The floor split by company over BENCH_PROCESSES processes started together, each with
    BENCH_CONCURRENCY requests in flight: what requests cost when no interpreter is shared by all
    of them. Its CPU is the processes' (each waited for here, so counted in this one's)."""
    processes = int(os.environ["BENCH_PROCESSES"])
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.contenders", "floor"],
            env={**os.environ, "BENCH_PART": str(part), "BENCH_PARTS": str(processes)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in range(processes)
    ]
    outputs = [process.communicate()[0] for process in started]
    if any(process.returncode for process in started):
        raise SystemExit("a floor process failed")
    print(f"documents={sum(int(out.strip().rpartition('=')[2]) for out in outputs)}")


def rest_api(parquet: bool) -> None:
    """dlt's generic rest_api source configured for the same endpoints and paging."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    url, token, folder = os.environ["BENCH_URL"], os.environ["BENCH_TOKEN"], os.environ["BENCH_DIR"]
    company_param = {"type": "resolve", "resource": "companies", "field": "companyId"}
    documents = [
        {
            "name": doc.resource,
            "primary_key": "requestId",
            "write_disposition": "merge",
            "endpoint": {
                "path": f"api/v1/companies/{{company_id}}/{doc.path}",
                "params": {"company_id": company_param, "limit": PAGE_LIMIT},
                "data_selector": "payload",
                "paginator": {
                    "type": "cursor",
                    "cursor_path": "continuationToken",
                    "cursor_param": "continuationToken",
                },
            },
        }
        for doc in DOCUMENT_TYPES
    ]
    config: Any = {
        "client": {"base_url": url, "auth": {"type": "bearer", "token": token}},
        "resources": [
            {
                "name": "companies",
                "primary_key": "companyId",
                "write_disposition": "merge",
                "endpoint": {"path": "api/v1/companies", "paginator": "single_page"},
            },
            {
                "name": "user_profiles",
                "write_disposition": "merge",
                "endpoint": {
                    "path": "api/v1/companies/{company_id}/userProfiles",
                    "params": {"company_id": company_param},
                    "paginator": "single_page",
                },
            },
            *documents,
        ],
    }
    pipeline = dlt.pipeline(
        "bench_rest_api",
        destination=dlt.destinations.duckdb(os.path.join(folder, "rest_api.duckdb")),
        dataset_name="approvalmax",
        pipelines_dir=os.path.join(folder, "pipelines"),
    )
    info = pipeline.run(rest_api_source(config), loader_file_format="parquet" if parquet else None)  # type: ignore[arg-type]
    print(info.has_failed_jobs)


if __name__ == "__main__":
    name = sys.argv[1]
    if name == "floor":
        floor()
    elif name == "floor_processes":
        floor_processes()
    elif name == "rest_api":
        rest_api(parquet=False)
    elif name == "rest_api_parquet":
        rest_api(parquet=True)
    else:
        raise SystemExit(f"unknown contender {name}")
