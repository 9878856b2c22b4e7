"""Dotted `section.name=value` overrides on nested config dataclasses.

Shared by the command-line tools and the driver's config loader, so a
parameter has the same name everywhere (`reputation.decay_rate=0.8`).
Unknown names and values of the wrong type are errors that name the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the field and what to do."""


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, typ: Any, name: str) -> Any:
    """`value` (a YAML scalar or an override's text) as type `typ`, or ConfigError."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{name}: cannot be null")
    if origin is typing.Literal:
        if value not in typing.get_args(typ):
            raise ConfigError(f"{name}: must be one of {typing.get_args(typ)}, got {value!r}")
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value  # lists, dicts: checked by the config's own validate()


def set_dotted(obj: Any, dotted: str, value: Any, prefix: str = "") -> Any:
    """A copy of dataclass `obj` with the field at `dotted` set to `value` (coerced)."""
    head, _, rest = dotted.partition(".")
    name = f"{prefix}{head}"
    types_ = field_types(type(obj))
    if head not in types_:
        known = ", ".join(f"{prefix}{f}" for f in types_)
        raise ConfigError(f"unknown config field {name!r}; known here: {known}")
    current = getattr(obj, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{name} is a value, not a section: cannot set {name}.{rest}")
        return dataclasses.replace(obj, **{head: set_dotted(current, rest, value, name + ".")})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"{name} is a section; set one of its fields ({name}.FIELD=VALUE)")
    return dataclasses.replace(obj, **{head: coerce(value, types_[head], name)})


def apply_overrides(obj: Any, overrides: list[str]) -> Any:
    """Apply `a.b=value` strings in order."""
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"override {item!r} is not of the form section.name=value")
        obj = set_dotted(obj, dotted.strip(), value.strip())
    return obj
