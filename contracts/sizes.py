"""Sizes as people read them: in the unit that fits (`2.1 KB`, not `0.0 MB`), decimal as disks and networks."""

_UNITS = ("KB", "MB", "GB", "TB")


def readable_size(size: int | float) -> str:
    if size < 1000:
        return f"{size:,.0f} B"
    for unit in _UNITS:
        size /= 1000
        if size < 1000 or unit == _UNITS[-1]:
            return f"{size:,.1f} {unit}"
    raise AssertionError("unreachable")
