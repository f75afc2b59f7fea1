"""Service configuration: one function loads, validates and cross-checks a config file.

``load_config(path)`` is the only way in: ``streamconv check``, service start and reload all
call it. It reads TOML (YAML for ``.yaml``/``.yml``), validates it against the strict models
(stage one: unknown keys, types, bounds), then cross-checks it in pipeline order (stage two:
rates, channel counts, names, files) and returns a `LoadedConfig` with every file read once and
the filter chain combined into one ``(L, Cin, Cout)`` FIR. Any problem raises `ConfigError`
listing every problem found, each as ``FILE:LINE: key.path: message``.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from streamconv.config import models
from streamconv.config.models import FILTER_TYPES, OUTPUT_TYPES, Config
from streamconv.config.parse import (
    LineMap,
    Problem,
    config_error,
    did_you_mean,
    read_document,
)
from streamconv.config.resolve import FilterInfo, LoadedConfig, TemplateInfo, resolve
from streamconv.config.streams import StreamInfo

__all__ = [
    "Config",
    "FilterInfo",
    "LoadedConfig",
    "StreamInfo",
    "TemplateInfo",
    "config_schema",
    "load_config",
    "validate_document",
]


def _known_keys() -> set[str]:
    """Every key any config table accepts, for "did you mean" hints."""
    keys: set[str] = set()
    for obj in vars(models).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            keys.update(obj.model_fields)
    return keys


def problem_from_pydantic(err: ErrorDetails, lines: LineMap) -> Problem:
    """One pydantic error as a `Problem`: the key path as the config writes it, a message a
    user can act on (a "did you mean" for an unknown key, the value given), its line."""
    loc = list(err["loc"])
    # A discriminated union puts the tag in the path: filters.0.lowpass.cutoff_hz.
    tag = None  # the entry's type, when pydantic names it
    if len(loc) >= 3 and loc[0] == "filters" and loc[2] in FILTER_TYPES:
        tag = loc.pop(2)
    if len(loc) >= 3 and loc[0] == "outputs" and loc[2] in OUTPUT_TYPES:
        tag = loc.pop(2)
    types, what = (
        (OUTPUT_TYPES, "output") if loc and loc[0] == "outputs" else (FILTER_TYPES, "filter")
    )
    kind = err["type"]
    value = err["input"]
    if kind == "extra_forbidden":
        word = str(loc[-1])
        own = models.keys_of_type(str(tag)) - {"type"} if tag else set()
        hint = did_you_mean(word, (own or _known_keys()) - {word})
        if own and not hint:
            # A key of another type (a webhook's timeout_s on an mqtt output) or none near:
            # say which keys this type takes, never "did you mean" the very same word.
            what_here = "unknown key" if word not in _known_keys() else "not a key"
            message = f"{what_here} for type {tag!r}; its keys: {', '.join(sorted(own))}"
        else:
            message = "unknown key" + hint
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_not_found":
        loc.append("type")
        message = f"missing type (one of {', '.join(types)})"
    elif kind == "union_tag_invalid":
        loc.append("type")
        message = f"unknown {what} type {value.get('type')!r}; known: {', '.join(types)}"
    elif value is None and kind == "string_type" and loc and loc[-1] == "uri":
        # YAML's bare `null` (or `~`, or nothing) is no value, not the null sink's name.
        message = "no value (YAML reads a bare null, ~ or nothing as none)"
        if loc[0] == "sink":
            message += ': write uri: "null" for the null sink'
    else:
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if isinstance(value, (bool, int, float, str)) and kind != "value_error":
            message += f", got {value!r}"
    path = tuple(loc)
    return Problem(path, message, lines.line(path))


def validate_document(data: dict, lines: LineMap | None = None) -> tuple[Config | None, list]:
    """Stage one: the strict models. Returns ``(config, [])`` or ``(None, problems)``."""
    lines = lines or LineMap()
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        return None, [problem_from_pydantic(e, lines) for e in exc.errors()]


def load_config(path: str) -> LoadedConfig:
    """Load, validate and cross-check the config file at ``path``.

    Parameters
    ----------
    path : str
        A TOML file, or YAML for ``.yaml``/``.yml``. Relative paths inside it are relative to
        its directory.

    Returns
    -------
    LoadedConfig
        The validated config with the resolved source and sink, the sample rate, the combined
        ``(L, Cin, Cout)`` taps, and the template samples.

    Raises
    ------
    ConfigError
        Any problem; ``errors`` lists every one as ``FILE:LINE: key.path: message``.
    """
    data, lines = read_document(path)
    config, problems = validate_document(data, lines)
    if config is not None:
        loaded, problems = resolve(config, path)
        problems = [Problem(p.path, p.message, lines.line(p.path)) for p in problems]
        if loaded is not None and not problems:
            return loaded
    raise config_error(path, problems)


def config_schema() -> str:
    """The JSON Schema of the config file, as indented JSON text."""
    schema = Config.model_json_schema()
    schema["title"] = "streamconv service config"
    return json.dumps(schema, indent=2)
