"""The README is the front door: it documents every setting the service reads."""

from pathlib import Path

from batch_exports.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields if f"`BATCH_EXPORTS_{name.upper()}`" not in README]
    assert missing == []


def test_front_door_commands_are_shown() -> None:
    assert "make dev" in README and "make test" in README
