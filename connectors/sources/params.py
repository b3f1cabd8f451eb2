"""Building SQL from parts the code owns, with every value from outside bound as a parameter."""

from typing import Any


class Params:
    """Bound parameters of a query being built: each value becomes `$n`, never text in the SQL."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


def like_containing(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
