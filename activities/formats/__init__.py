"""File formats a destination can write: how a record batch becomes bytes."""
