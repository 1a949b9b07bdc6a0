"""Every measured table in the docs is what ``python -m bench.docs_tables`` writes from bench/results."""

from __future__ import annotations

from bench import docs_tables


def test_the_docs_tables_match_the_results_files():
    for path in docs_tables.DOCS:
        text = path.read_text()
        assert docs_tables.render(text) == text, f"{path} is out of date: run python -m bench.docs_tables"
