"""Experiment config: load YAML, validate against the schema, fill defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key."""


def load_schema() -> dict[str, Any]:
    """Return the config JSON schema shipped with the package."""
    text = resources.files("iterlens").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _fill_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Recursively fill missing object properties (array items' too) from schema defaults."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fill_defaults(schema["items"], item) for item in value]
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = _fill_defaults(sub, _copy(sub["default"]))
        elif key in out:
            out[key] = _fill_defaults(sub, out[key])
    return out


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


# Keys of earlier versions, and where their setting lives now.
MOVED = {
    "seeds": "each models entry's controls.seeds",
    "controls": "each models entry's controls",
    "lm.model": "the models table (source: hub or folder, with a path)",
    "vision.enabled": "the models table (list no 'cnn' entry)",
    "release.use_released_lenses": "each models entry's released_lenses.use",
    "release.lenses_from": "each models entry's released_lenses.source",
    "release.lens_name": "each models entry's released_lenses.lens_name",
}


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = f"{path}.{extra[0]}" if path else extra[0]
        moved = MOVED.get(key)
        hint = f" (moved to {moved})" if moved else ""
        return f"unknown config key '{key}'{hint}; allowed here: {', '.join(allowed)}"
    return f"config key '{path or '<root>'}': {error.message}"


def validate(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a config mapping and return a copy with all defaults filled.

    Raises:
        ConfigError: naming the first offending key.
    """
    schema = load_schema()
    filled = _fill_defaults(schema, dict(config or {}))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0]))
    from iterlens.models.studied import Study, StudyError

    try:
        Study.of(filled)
    except StudyError as err:
        raise ConfigError(str(err)) from None
    return filled


def load_config(
    path: str | Path | Sequence[str | Path] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict:
    """Read YAML config files (or none), merge them in order and the overrides, validate.

    Several files merge as snakemake merges ``--configfile`` over the Snakefile's config: a
    later file's mapping updates an earlier one's key by key, any other value replaces it.
    """
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    raw: dict[str, Any] = {}
    for one in map(Path, paths):
        if not one.exists():
            raise ConfigError(f"config file not found: {one}")
        data = yaml.safe_load(one.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {one} must hold a mapping, not {type(data).__name__}")
        raw = _merge(raw, data)
    if overrides:
        raw = _merge(raw, overrides)
    return validate(raw)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
