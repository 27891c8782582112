"""The one dlt patch: Arrow tables into nested tables fail dlt 1.31's extract metrics without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dlt.extract.extract import Extract
from dlt.pipeline.exceptions import PipelineStepFailed

from approvalmax_pipeline.sources.approvalmax.arrow.dlt_compat import allow_arrow_in_nested_tables

from .test_arrow_tables import load, odd_documents


def test_patching_twice_wraps_once() -> None:
    allow_arrow_in_nested_tables()
    patched = Extract._compute_metrics
    allow_arrow_in_nested_tables()
    assert Extract._compute_metrics is patched


def test_without_the_patch_arrow_child_tables_fail_with_keyerror_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_arrow_in_nested_tables()
    monkeypatch.setattr(Extract, "_compute_metrics", Extract._compute_metrics.__wrapped__)  # type: ignore[attr-defined]
    with pytest.raises(PipelineStepFailed) as failed:
        load(tmp_path, True, odd_documents())
    assert "'resource'" in repr(failed.value.exception)


def test_with_the_patch_the_same_load_succeeds(tmp_path: Path) -> None:
    allow_arrow_in_nested_tables()
    load(tmp_path, True, odd_documents())
