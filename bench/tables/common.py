"""What every table renderer shares: reading a results file, formatting cells, the run's command and machine."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"


def num(value, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or an en dash for None."""
    return "–" if value is None else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the header, the rule and one line per row of cells."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


def load(name: str) -> dict:
    """The results file ``bench/results/NAME.json``."""
    return json.loads((RESULTS / f"{name}.json").read_text())


def machine(data: dict) -> str:
    """The command, CPU (or device), cores and date a results file records, as one sentence."""
    m = data.get("machine") or {}
    command = f"`{data['command']}`" if data.get("command") else "a command not recorded in the results file"
    cpu = m.get("cpu_model") or m.get("device") or "a CPU whose model was not recorded"
    cores = m.get("cpus_usable") or m.get("cpu_count") or m.get("cpus")
    when = (data.get("written_at") or "")[:10] or "date not recorded"
    return f"{command} on {cpu}" + (f" ({cores} cores)" if cores else "") + f", {when}."


def cell(value, digits: int | None) -> str:
    """A table cell: numbers with ``digits`` decimals (``None``: as they are), an en dash for None."""
    if value is None:
        return "–"
    if digits is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def rows_table(rows: list[dict], columns: list[tuple[str, str, int | None]]) -> list[str]:
    """A markdown table of ``rows``: one column per ``(header, key, digits)``; ``digits=None`` prints as is."""
    return table([c[0] for c in columns], [[cell(r.get(key), d) for _, key, d in columns] for r in rows])


def simple(
    name: str, columns: list[tuple[str, str, int | None]], *, key: str = "rows", note: str = "", keep=None
) -> list[str]:
    """The table of results file ``name``'s list ``key`` (rows kept where ``keep(row)``), a note and its run."""
    data = load(name)
    rows = [r for r in data[key] if keep is None or keep(r)]
    return rows_table(rows, columns) + ["", (note + " " if note else "") + f"Measured with {machine(data)}"]
