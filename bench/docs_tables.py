"""Write the measured tables into the docs from bench/results, so no number there is copied by hand.

    python -m bench.docs_tables            # rewrite every marked block and docs/reference/cli.md
    python -m bench.docs_tables --check    # exit 1 if a block or the CLI page is out of date (CI-friendly)

A block in README.md or a docs page is ``<!-- results:NAME -->`` ... ``<!-- /results -->``; NAME is
one of :data:`TABLES`, each a function from a results JSON to markdown lines ending with the command
and machine of the run. The command-line reference is written from the Typer app.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bench.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- results:([a-z_]+) -->\n)(.*?)(<!-- /results -->)", re.S)

CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"
#: A markdown table row, and a decimal number outside code spans (a measurement unless a results block writes it).
TABLE_ROW = re.compile(r"^\|.*\|[ \t]*$", re.M)
DECIMAL = re.compile(r"\d\.\d")
CODE_SPAN = re.compile(r"`[^`]*`")


def render(text: str) -> str:
    """``text`` with every results block rewritten from bench/results.

    Raises
    ------
    KeyError
        When a block names no table in :data:`TABLES`.
    """

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise KeyError(f"no table named {name!r} in bench.docs_tables.TABLES")
        return match.group(1) + "\n".join(TABLES[name]()) + "\n" + match.group(4)

    return BLOCK.sub(fill, text)


def tables_outside_blocks(text: str) -> list[str]:
    """Table rows with decimal numbers that no results block writes (numbers copied by hand)."""
    rows = TABLE_ROW.findall(BLOCK.sub("", text))
    return [row for row in rows if DECIMAL.search(CODE_SPAN.sub("", row))]


def cli_reference() -> str:
    """The command-line reference page, written from the Typer app (every command and option)."""
    import click
    import typer
    from typer.cli import get_docs_for_click

    from agilecls.cli import app

    command = typer.main.get_command(app)
    ctx = click.Context(command, info_name="agilecls", obj={})
    body = get_docs_for_click(obj=command, ctx=ctx, name="agilecls", title="Command line")
    head = "<!-- written by python -m bench.docs_tables from the Typer app (agilecls.cli); do not edit -->\n\n"
    return head + body.strip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    pages = {path: render(path.read_text()) for path in DOCS if path != CLI_PAGE}
    pages[CLI_PAGE] = cli_reference()
    for path, new in pages.items():
        if not path.exists() or new != path.read_text():
            stale.append(path)
            if not args.check:
                path.write_text(new)
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(map(str, stale)) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
