"""docs/configuration.md is written from `Settings` by `python -m entrypoints.config_doc`: every setting, its
default and its Field's description, and the page in the repository is what the generator writes today."""

from pathlib import Path

import pytest
from pydantic import Field

from batch_exports.settings import Settings
from entrypoints.config_doc import COMMAND, configuration_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_page_is_the_generators_output() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert page.exists() and page.read_text() == configuration_markdown(), (
        f"docs/configuration.md is not what batch_exports/settings.py says: run `.venv/bin/{COMMAND}`"
    )


def test_every_setting_has_a_row_with_its_description() -> None:
    page = configuration_markdown()
    for name, field in Settings.model_fields.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `BATCH_EXPORTS_{name.upper()}` |")), None)
        assert row is not None, name
        assert field.description is not None and field.description in row.replace("\\|", "|")


def test_a_new_setting_gets_its_row_default_and_bounds() -> None:
    class More(Settings):
        widgets_per_run: int = Field(7, ge=2, le=9, description="Widgets | one run makes.")
        widget_mode: str | None = Field(None, description="How widgets are made.")

    rows = configuration_markdown(More).splitlines()
    assert "| `BATCH_EXPORTS_WIDGETS_PER_RUN` | `7` | at least 2, at most 9 | Widgets \\| one run makes. |" in rows
    assert "| `BATCH_EXPORTS_WIDGET_MODE` | none |  | How widgets are made. |" in rows
    assert rows[-2:] == [row for row in rows if "WIDGET" in row]  # in declaration order, after the others


def test_a_setting_without_a_description_is_refused() -> None:
    class Undocumented(Settings):
        secret_knob: int = 3

    with pytest.raises(ValueError, match="secret_knob"):
        configuration_markdown(Undocumented)
