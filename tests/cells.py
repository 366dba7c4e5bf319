"""How a rich table printed by the CLI lays out: each body row, and how many lines it takes (its tallest cell)."""

from __future__ import annotations

BODY = "│"  # rich's vertical rule in a table's body (the header row uses a heavy one)


def row_heights(text: str) -> list[list[int]]:
    """For each table in printed `text`, the number of lines of each body row.

    A row starts at a line whose first cell is not blank; the lines after it with a blank first cell are that
    row's cells wrapped onto more lines. (A first cell that wraps shows as extra rows: compare the count too.)
    """
    tables: list[list[int]] = []
    heights: list[int] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith(BODY):
            heights = None
            continue
        if heights is None:
            heights = []
            tables.append(heights)
        first = stripped.strip(BODY).split(BODY)[0].strip()
        if first or not heights:
            heights.append(1)
        else:
            heights[-1] += 1
    return tables
