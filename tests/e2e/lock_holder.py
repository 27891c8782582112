"""`python -m tests.e2e.lock_holder TOKEN_STORE OUT SECONDS`: hold a BigQuery pipeline's dataset lock
for SECONDS and append when it was held to OUT (BigQuery settings from the environment)."""

from __future__ import annotations

import os
import sys
import time

import dlt

from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.factory import resolve_destination


def main() -> None:
    token_store, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    # a working folder each (four processes saving one pipeline's state at once collide), one dataset lock for all
    name = f"holder_{os.getpid()}"
    pipeline = dlt.pipeline(name, destination=resolve_destination("bigquery"), dataset_name="approvalmax")
    with dataset_lock(pipeline, token_store):
        start = time.time()
        time.sleep(seconds)
        end = time.time()
    with open(out, "a") as file:
        file.write(f"{start} {end}\n")


if __name__ == "__main__":
    main()
