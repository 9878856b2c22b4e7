"""Instruction sets: the built-in demo set and loaders for local files.

An instruction is (id, text, reference); `reference` is the checkable answer
where there is one (demo arithmetic and unit conversions), else "".
Files: .jsonl (one object per line), .json (a list of objects) or .parquet,
with the text in `instructions.prompt_field` and an optional id in
`instructions.id_field`. Errors name the file, the line or row and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..config.schema import InstructionsConfig
from ..errors import ConfigError, SpartaError, at
from .text import unsafe


@dataclass(frozen=True)
class Instruction:
    id: str
    text: str
    reference: str = ""


_OPEN = (
    "Write a haiku about autumn leaves.",
    "Give three tips for staying focused while studying.",
    "Explain what a prime number is to a ten-year-old.",
    "Suggest a name for a small bakery and say why it fits.",
    "Describe the water cycle in two sentences.",
    "Write a polite email declining a meeting invitation.",
    "What are the benefits of regular exercise?",
    "Explain the difference between weather and climate.",
    "List four fruits that are rich in vitamin C.",
    "Write a short motivational message for someone starting a new job.",
    "Why is the sky blue? Answer briefly.",
    "Give a one-sentence summary of what a computer does.",
    "Recommend a simple breakfast that is quick to make.",
    "Explain why we should recycle plastic.",
    "Write two lines of a poem about the sea.",
    "What should you pack for a one-day hike?",
)

_UNITS = (  # (question template, conversion factor)
    ("How many centimeters are in {x} meters?", 100),
    ("How many grams are in {x} kilograms?", 1000),
    ("How many minutes are in {x} hours?", 60),
    ("How many millimeters are in {x} centimeters?", 10),
    ("How many seconds are in {x} minutes?", 60),
    ("How many meters are in {x} kilometers?", 1000),
)


def demo_instructions() -> list[Instruction]:
    """A small deterministic set: arithmetic, unit conversions (checkable), open tasks."""
    items = []
    for i in range(24):
        x, y = 7 + 3 * i, 5 + (11 * i) % 37
        if i % 3 == 0:
            items.append(Instruction(f"add-{i}", f"What is {x} + {y}? Answer with the number.", str(x + y)))
        elif i % 3 == 1:
            items.append(Instruction(f"sub-{i}", f"What is {x + y} - {y}? Answer with the number.", str(x)))
        else:
            a, b = 2 + i % 9, 3 + i % 7
            items.append(Instruction(f"mul-{i}", f"What is {a} times {b}? Answer with the number.", str(a * b)))
    for i in range(12):
        template, factor = _UNITS[i % len(_UNITS)]
        x = 2 + i
        items.append(Instruction(f"unit-{i}", template.format(x=x), str(x * factor)))
    items.extend(Instruction(f"open-{i}", text) for i, text in enumerate(_OPEN))
    return items


def iter_rows(path: Path, setting: str = "instructions.source",
              error: type[SpartaError] = ConfigError) -> Iterator[tuple[str, object]]:
    """(location, row) pairs from a .jsonl, .json or .parquet file, streamed where the format allows
    (a JSON Lines file line by line, a Parquet file by record batch): SFT data can be gigabytes.
    The project's one reader of rows: every error is `error` (the caller's: ConfigError for a file
    the config names) at the place `errors.at` writes; `setting` names the config field or option
    that points at the file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from iter_lines(path, error)
        return
    if suffix == ".json":
        data = parse_json(path.read_bytes(), str(path), error)
        if not isinstance(data, list):
            raise error(f"{path}: expected a JSON list of objects")
        yield from ((at(path, row=i), row) for i, row in enumerate(data))
        return
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=4096)
            i = 0
            for batch in batches:
                for row in batch.to_pylist():
                    yield at(path, row=i), row
                    i += 1
        except Exception as err:  # pyarrow raises several types for a bad file
            raise error(f"{path}: cannot read as Parquet: {err}") from err
        return
    raise error(f"{setting}: {path} has an unknown extension (use .jsonl, .json or .parquet)")


def iter_lines(path: Path, error: type[SpartaError] = ConfigError) -> Iterator[tuple[str, object]]:
    """(location, row) of each non-blank line of a JSON Lines file, whatever its name."""
    with open(path, "rb") as f:  # bytes: a line that is not UTF-8 is an error naming it
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield at(path, lineno), parse_json(line, at(path, lineno), error)


def parse_json(raw: bytes, where: str, error: type[SpartaError] = ConfigError):
    """One JSON document; `error` naming `where` for anything that is not one (invalid UTF-8,
    a syntax error, nesting too deep for the parser)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{where}: not UTF-8 text (invalid byte at position {err.start})") from None
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None


def _rows(path: Path) -> list[tuple[str, object]]:
    return list(iter_rows(path))


def load_instructions(cfg: InstructionsConfig) -> list[Instruction]:
    if cfg.source == "demo":
        items = demo_instructions()
    else:
        path = Path(cfg.source)
        if not path.is_file():
            raise ConfigError(f"instructions.source: no file at {path}")
        items = []
        for i, (where, row) in enumerate(_rows(path)):
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected an object with field {cfg.prompt_field!r}")
            text = row.get(cfg.prompt_field)
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{at(where, field=cfg.prompt_field)} (instructions.prompt_field) is missing "
                                  "or not a non-empty string")
            if cfg.id_field and cfg.id_field not in row:
                raise ConfigError(f"{at(where, field=cfg.id_field)} (instructions.id_field) is missing")
            ident = row[cfg.id_field] if cfg.id_field else i
            if not isinstance(ident, (str, int)) or isinstance(ident, bool) or not str(ident).strip():
                raise ConfigError(f"{at(where, field=cfg.id_field)} (instructions.id_field) must be a non-empty "
                                  f"string or an integer, got {ident!r}")
            reference = row.get(cfg.reference_field) if cfg.reference_field else None
            if reference is not None and (not isinstance(reference, (str, int, float)) or isinstance(reference, bool)):
                raise ConfigError(f"{at(where, field=cfg.reference_field)} (instructions.reference_field) "
                                  "must be a text")
            item = Instruction(str(ident), text, "" if reference is None else str(reference))
            for name, value in ((cfg.prompt_field, item.text), (cfg.id_field, item.id),
                                (cfg.reference_field, item.reference)):
                # the archive stores them as UTF-8 strings, which cannot hold these
                if name and (what := unsafe(value)):
                    raise ConfigError(f"{at(where, field=name)} holds {what}; clean the file")
            items.append(item)
        if not items:
            raise ConfigError(f"instructions.source: {path} holds no instructions")
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"instructions.source: {path} has duplicate ids in field {cfg.id_field!r}")
    if cfg.with_reference_only:
        items = [it for it in items if it.reference.strip()]
        if not items:
            raise ConfigError(f"instructions: no instruction of {cfg.source} has a reference answer "
                              "(instructions.reference_field)")
    if cfg.limit is not None:
        items = items[: cfg.limit]
    return items
