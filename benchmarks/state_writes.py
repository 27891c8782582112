"""Run state written to the warehouse and CPU per run, this code against a git ref's: a full load,
a quiet run, and a run where one organisation of N changed (`python -m benchmarks.state_writes
--companies 1000 --documents 18 --baseline REF`)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.run import OURS, REPO, SandboxProcess, baseline_code, measure, ours_env, state_bytes_by_table


def first_company(database: Path) -> str:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        row = connection.execute("SELECT MIN(company_id) FROM approvalmax.companies").fetchone()
        return str(row[0]) if row else ""


def runs(sandbox: SandboxProcess, code: Path, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = ours_env(sandbox, Path(tmp), code)
        database = Path(tmp) / "ours.duckdb"
        measure(OURS, env, sandbox)  # the full load
        measure(OURS, env, sandbox)  # a quiet run: warms the page cache and settles the lookback
        for name in ("quiet", "one changed"):
            if name == "one changed":
                sandbox.admin("POST", "mutate", modify=1, company=first_company(database))
            before = state_bytes_by_table(database)
            m = measure(OURS, env, sandbox)
            after = state_bytes_by_table(database)
            written = {table: after[table] - before[table] for table in after}
            print(
                f"{label:>10} | {name:<11} | CPU {m.cpu:6.2f} s | wall {m.wall:6.2f} s | requests {m.requests} | "
                + " | ".join(f"{table} +{size:,} B" for table, size in written.items()),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=18)
    parser.add_argument("--baseline", default=None, help="a git ref to run as well, first")
    args = parser.parse_args()
    sandbox = SandboxProcess(args.companies, args.documents)
    try:
        if args.baseline:
            base = baseline_code(args.baseline)
            if base is not None:
                runs(sandbox, base.code, args.baseline)
        runs(sandbox, REPO, "this")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
