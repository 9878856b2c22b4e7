"""Dotted `section.name=value` overrides on nested config dataclasses.

Shared by the command-line tools and the driver's config loader, so a
parameter has the same name everywhere (`reputation.decay_rate=0.8`).
Unknown names and values of the wrong type are errors that name the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import types
import typing
from typing import Any

import yaml

from ..errors import ConfigError


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    # cached: resolving a dataclass's annotations is most of the cost of loading a config,
    # which every task does
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
        number = None
        if isinstance(value, (int, float)):
            number = float(value) if abs(value) < 1e308 else math.inf  # a huge int overflows float()
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if not math.isfinite(number):  # .nan, .inf: every check below would let a NaN through
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return number
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value  # lists, dicts: checked by the config's own validate()


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a YAML mapping; unknown keys and wrong types are errors."""
    where = prefix.rstrip(".") or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {data!r}")
    types_ = field_types(cls)
    unknown = [k for k in data if k not in types_]
    if unknown:
        # quoted whole, as set_dotted names an override's: the key may hold spaces or odd characters
        raise ConfigError(f"unknown config field {prefix + str(unknown[0])!r}; known here: "
                          + ", ".join(f"{prefix}{f}" for f in types_))
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = build_value(types_[name], value, f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{where}: missing required field(s) {', '.join(prefix + m for m in missing)}") from err


def build_value(typ: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(typ):
        return from_dict(typ, value, name + ".")
    if typing.get_origin(typ) is list:
        (item,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [build_value(item, v, f"{name}.{i}") for i, v in enumerate(value)]
    if typing.get_origin(typ) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            raise ConfigError(f"{name}: keys must be non-empty names, got {bad[0]!r}")
        return dict(value)
    return coerce(value, typ, name)


def _list_index(items: list, key: str, name: str) -> int:
    """A list element by position or, for named items (members), by name."""
    if key.isdigit() and int(key) < len(items):
        return int(key)
    for i, item in enumerate(items):
        if getattr(item, "name", None) == key:
            return i
    raise ConfigError(f"{name}: no element {key!r} (use a position 0..{len(items) - 1} or a name)")


def set_dotted(obj: Any, dotted: str, value: Any, prefix: str = "") -> Any:
    """A copy of dataclass `obj` with the field at `dotted` set to `value` (coerced)."""
    head, _, rest = dotted.partition(".")
    name = f"{prefix}{head}"
    types_ = field_types(type(obj))
    if head not in types_:
        known = ", ".join(f"{prefix}{f}" for f in types_)
        raise ConfigError(f"unknown config field {name!r}; known here: {known}")
    current = getattr(obj, head)
    typ = types_[head]
    if rest and isinstance(current, list) and current and dataclasses.is_dataclass(current[0]):
        key, _, rest2 = rest.partition(".")
        i = _list_index(current, key, name)
        if not rest2:
            raise ConfigError(f"{name}.{key} is a section; set one of its fields")
        items = list(current)
        items[i] = set_dotted(items[i], rest2, value, f"{name}.{key}.")
        return dataclasses.replace(obj, **{head: items})
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{name} is a value, not a section: cannot set {name}.{rest}")
        return dataclasses.replace(obj, **{head: set_dotted(current, rest, value, name + ".")})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"{name} is a section; set one of its fields ({name}.FIELD=VALUE)")
    if typing.get_origin(typ) in (list, dict) and isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"{name}: cannot parse {value!r} as YAML ({err})") from err
    return dataclasses.replace(obj, **{head: build_value(typ, value, name)})


def apply_overrides(obj: Any, overrides: list[str]) -> Any:
    """Apply `a.b=value` strings in order."""
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted:
            raise ConfigError(f"override {item!r} is not of the form section.name=value")
        obj = set_dotted(obj, dotted.strip(), value.strip())
    return obj


def add_override_arguments(parser: argparse.ArgumentParser, metavar: str = "section.name=value",
                           example: str = "") -> None:
    """The one way a command takes overrides: positional `a.b=v` words, and `--set a.b=v` as an alias
    (repeatable). `given_overrides` collects both."""
    parser.add_argument("overrides", nargs="*", metavar=metavar,
                        help="dotted overrides, applied in order" + (f", e.g. {example}" if example else ""))
    parser.add_argument("--set", action="append", default=[], metavar=metavar,
                        help="an override as an option (repeatable), applied after the positional ones")


def is_override(word: str) -> bool:
    return "=" in word and not word.startswith("-")


def given_overrides(args: argparse.Namespace, extra: list[str], lead: str | None = None) -> list[str]:
    """A command's overrides in the order they apply: the positional ones, those after options
    (argparse leaves them in `extra`, which this empties), then the `--set` ones.

    `lead`: an optional positional before the overrides (a run directory, a config file) that took
    the first override when it was left out; it is given back to the overrides and set to None.
    """
    found = list(args.overrides)
    if lead and getattr(args, lead) is not None and is_override(str(getattr(args, lead))):
        found.insert(0, str(getattr(args, lead)))
        setattr(args, lead, None)
    if all(is_override(x) for x in extra):
        found += extra
        extra.clear()
    return found + args.set


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)
