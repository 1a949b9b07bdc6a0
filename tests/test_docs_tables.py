"""Every measured table in README and the docs is what ``python -m bench.docs_tables`` writes from bench/results."""

from __future__ import annotations

import pytest

from bench import docs_tables


@pytest.mark.parametrize("path", docs_tables.DOCS, ids=lambda p: str(p.relative_to(docs_tables.ROOT)))
def test_every_results_block_is_what_the_script_writes(path):
    text = path.read_text()
    assert docs_tables.render(text) == text, f"{path} is out of date: run python -m bench.docs_tables"


@pytest.mark.parametrize("path", docs_tables.DOCS, ids=lambda p: str(p.relative_to(docs_tables.ROOT)))
def test_no_table_of_decimal_numbers_sits_outside_a_results_block(path):
    rows = docs_tables.tables_outside_blocks(path.read_text())
    assert not rows, f"{path}: a table of numbers copied by hand (write it from bench/results): {rows[:3]}"


def test_the_check_finds_a_stale_block_and_a_copied_table():
    block = "<!-- results:load_times -->\n| model | s |\n| --- | --- |\n| x | 1.0 |\n<!-- /results -->\n"
    assert docs_tables.render(block) != block
    assert docs_tables.render(docs_tables.render(block)) == docs_tables.render(block)
    assert docs_tables.tables_outside_blocks(docs_tables.render(block)) == []
    assert docs_tables.tables_outside_blocks("text\n\n| model | s |\n| --- | --- |\n| x | 1.5 |\n") == ["| x | 1.5 |"]
    with pytest.raises(KeyError, match="no table named"):
        docs_tables.render("<!-- results:nothing_like_it -->\n<!-- /results -->")


def test_the_cli_reference_is_written_from_the_typer_app():
    assert docs_tables.CLI_PAGE.read_text() == docs_tables.cli_reference(), "run python -m bench.docs_tables"
    for command in ("train", "predict", "distill", "serve", "project"):
        assert f"## `agilecls {command}`" in docs_tables.CLI_PAGE.read_text()
