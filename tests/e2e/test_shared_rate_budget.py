"""The shared rate budget in the PostgreSQL token store's database: workers on several machines."""

from __future__ import annotations

from ..unit.test_rate_budget import processes_share_one_window


def test_processes_on_a_postgresql_token_store_share_one_window(postgres_db: str) -> None:
    processes_share_one_window(postgres_db)
