"""The destinations' rooms (`connectors/destinations/`): the generic parts at the bottom, the way out above
them, the families above both, the registry on top; no import runs back up."""

import ast
from pathlib import Path

import connectors.destinations

ROOT = Path(connectors.destinations.__file__).parent
PACKAGE = "connectors.destinations"
GENERIC = {"base", "redaction"}
NETWORK = {"network"}
FAMILIES = {"object_stores", "tables", "warehouses", "http", "noop"}
MAY_USE = {
    "generic": GENERIC,
    "network": GENERIC | NETWORK,
    "family": GENERIC | NETWORK | FAMILIES,
}
"""The rooms each floor may import from (the registry `__init__` and `integrations` stand above them all)."""


def room(path: Path) -> str:
    part = path.relative_to(ROOT).parts[0]
    return part.removesuffix(".py")


def floor(name: str) -> str | None:
    if name in GENERIC:
        return "generic"
    if name in NETWORK:
        return "network"
    if name in FAMILIES:
        return "family"
    return None


def imported_rooms(path: Path) -> set[str]:
    """The rooms of connectors.destinations a module imports (the package itself: `__init__`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            rest = node.module.removeprefix(PACKAGE).lstrip(".")
            if rest:
                found.add(rest.split(".")[0])
            else:  # `from connectors.destinations import x`: a room when x is one, else the registry
                found |= {a.name if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists() else "__init__"
                          for a in node.names}  # fmt: skip
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix(PACKAGE + ".").split(".")[0] for a in node.names
                      if a.name.startswith(PACKAGE + ".")}  # fmt: skip
    return found


def test_no_import_runs_back_up() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = room(path)
        level = floor(own)
        if level is None:
            continue
        for used in imported_rooms(path) - {own}:
            if used not in MAY_USE[level]:
                wrong.append(f"{path.relative_to(ROOT)} ({level}) imports {used}")
    assert wrong == []


def test_every_module_is_in_a_room() -> None:
    rooms = {room(path) for path in ROOT.rglob("*.py")}
    assert rooms - {"__init__", "integrations"} <= GENERIC | NETWORK | FAMILIES
    assert {"network", "object_stores", "tables", "warehouses"} <= {p.name for p in ROOT.iterdir() if p.is_dir()}
