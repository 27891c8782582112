"""The Arrow engine: document pages parsed by Arrow's JSON reader and unnested into the tables dlt's
normaliser would make, at a fraction of its cost. `ArrowSink` is its one entry point.

Modules: `pages` (a page as an Arrow struct array), `schema` (the page types learned so far),
`columns` (typed columns with dlt's coercions), `tables` (batches unnested into per-table Arrow
tables), `dlt_compat` (the one patch dlt 1.31 needs for that), `sink` (the DocumentSink).
"""

from .sink import ArrowSink

__all__ = ["ArrowSink"]
