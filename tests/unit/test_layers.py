"""What the layer contracts (`lint-imports`, [tool.importlinter] in pyproject.toml) cannot say."""

from __future__ import annotations

import re

from ..conftest import REPO


def test_the_source_package_names_load_on_first_use() -> None:
    import approvalmax_pipeline.sources.approvalmax as package

    assert package.approvalmax_source.__module__ == "approvalmax_pipeline.sources.approvalmax.connector"
    assert package.ExtractOptions().arrow is True


def test_nothing_imports_the_folders_by_their_repository_names() -> None:
    """`sources.x` and `approvalmax_pipeline.sources.x` would be two modules with two sets of classes."""
    pattern = re.compile(
        r"^\s*(from|import)\s+(sources|pipelines|sandbox)\b|-m\", \"(sources|pipelines|sandbox)\b", re.M
    )
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("sources", "pipelines", "sandbox", "tests", "benchmarks", "notebooks")
        for path in (REPO / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    """The layer contracts order the packages; this finds circles inside one, such as a sink
    implementation and the module that picks it importing each other."""
    import grimp

    graph = grimp.build_graph("approvalmax_pipeline")
    circles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert circles == []
