"""docs/configuration.md, written from `Settings`: `python -m entrypoints.config_doc > docs/configuration.md`.

One row per setting, in the order `Settings` declares them: its environment variable, its default, what it
accepts and its Field's `description=`. The output depends on `batch_exports/settings.py` alone, so the page
cannot drift from the code (tests/unit/test_configuration_doc.py regenerates it and compares).
"""

import sys
import typing
from pathlib import Path

import annotated_types
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from batch_exports.settings import Settings

COMMAND = "python -m entrypoints.config_doc > docs/configuration.md"

INTRO = f"""\
# Configuration

<!-- Generated from batch_exports/settings.py by `{COMMAND}`: edit the settings' descriptions, not this page. -->

Every setting is an environment variable, read by `batch_exports/settings.py` (pydantic-settings). The Temporal
client follows Temporal's own conventions through `temporalio.envconfig`: `TEMPORAL_ADDRESS` (default
`localhost:7233`), `TEMPORAL_NAMESPACE` (`default`), `TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE` and
the TOML config file. Traces follow OpenTelemetry's own variables: none are sent unless
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (OTLP over HTTP, e.g. `http://otel-collector:4318`); `OTEL_SERVICE_NAME`,
`OTEL_EXPORTER_OTLP_HEADERS` and the rest apply as usual. Which ports `make dev` opens and checks:
[operating.md](operating.md#ports).
"""


def configuration_markdown(settings: type[BaseSettings] = Settings) -> str:
    prefix = settings.model_config.get("env_prefix", "")
    rows = ["| variable | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, field in settings.model_fields.items():
        if not field.description:
            raise ValueError(f"setting {name} has no description=: the configuration page is written from it")
        cells = (f"`{prefix}{name.upper()}`", default_of(field), accepts(field), field.description)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return INTRO + "\n" + "\n".join(rows) + "\n"


def default_of(field: FieldInfo) -> str:
    value = field.get_default()
    if value is None:
        return "none"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, Path):
        value = value.as_posix()
    return f"`{value}`"


def accepts(field: FieldInfo) -> str:
    choices = [
        arg for arg in typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal
    ]
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    bounds = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            bounds.append(f"at least {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            bounds.append(f"above {item.gt}")
        elif isinstance(item, annotated_types.Le):
            bounds.append(f"at most {item.le}")
        elif isinstance(item, annotated_types.Lt):
            bounds.append(f"below {item.lt}")
        elif getattr(item, "pattern", None):
            bounds.append(f"matching `{item.pattern}`")
    return ", ".join(bounds)


def main() -> None:
    sys.stdout.write(configuration_markdown())


if __name__ == "__main__":
    main()
