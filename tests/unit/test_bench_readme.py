"""bench/README.md holds the method and one current table per benchmark: each script a person runs has its section,
its command and a single table whose rows carry a date and the load, a figure at load above 2 marked so."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_README = ROOT / "bench" / "README.md"
FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)


def prose(path: Path) -> str:
    return FENCE.sub("", path.read_text())


def benchmarks() -> list[str]:
    """The scripts a person runs: each module of bench/ that parses a command line."""
    return sorted(path.stem for path in (ROOT / "bench").glob("*.py") if "ArgumentParser(" in path.read_text())


def test_each_benchmark_has_one_current_table_with_date_and_load() -> None:
    sections = re.split(r"^## ", prose(BENCH_README), flags=re.M)
    assert re.search(r"^How they measure$", sections[1], re.M), "bench/README.md starts with its method"
    names = benchmarks()
    assert names, "no benchmark found in bench/"
    for name in names:
        section = next((s for s in sections if s.splitlines()[0].endswith(f"(`bench.{name}`)")), None)
        assert section is not None, f"bench/README.md has no section `## ... (`bench.{name}`)`"
        assert f"python -m bench.{name}" in BENCH_README.read_text(), f"bench.{name}: its command"
        tables = re.findall(r"^\|.*\|\n\|[ \-|]+\|\n(?:\|.*\|\n?)+", section, re.M)
        assert len(tables) == 1, f"bench.{name}: {len(tables)} tables, one current table is wanted"
        header, _, *rows = tables[0].strip().splitlines()
        columns = [cell.strip() for cell in header.strip("|").split("|")]
        assert "date" in columns and "load" in columns, f"bench.{name}: its table has no date or load column"
        for row in rows:
            cells = [cell.strip() for cell in row.strip("|").split("|")]
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[columns.index("date")]), row
            load = cells[columns.index("load")]
            figures = [float(figure) for figure in re.findall(r"\d+(?:\.\d+)?", load)]
            assert figures, f"bench.{name}: a row without its load: {row}"
            if max(figures) > 2:
                assert "above 2" in load, f"bench.{name}: a figure at load {max(figures)} not marked: {row}"
