"""The initial tribe's SFT data: each member's slice of a chat dataset, checked before any job.

A row (sft.source_field, sft.messages_field; the Tulu-v2 SFT mixture's layout):

    {"dataset": "flan_v2", "id": "...", "messages": [{"role": "user", "content": "..."},
                                                     {"role": "assistant", "content": "..."}]}

A member's slice: the rows whose source equals its `sft_source` (default: its name) or starts
with it + "." (so `science` takes every `science.*` source). Each row becomes one training
example in TRL's conversational prompt-completion format: the completion is the last assistant
turn, the prompt everything before it. TRL renders both with the model's own chat template and
computes the loss on the completion only; earlier turns of a multi-turn row are its context.
Rows without an assistant answer after a user turn teach nothing and are skipped (counted).

`sft.data: demo` is a built-in set for the tiny preset: the demo instructions
(instructions.py) with answers, as the sources arithmetic.add/.sub/.mul, units and open.
No torch here: the driver imports this module on a login node.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from ..config.ranges import require
from ..config.schema import Config, MemberConfig, SFTConfig
from ..errors import ConfigError, at
from .instructions import demo_instructions, iter_rows

ROLES = ("system", "user", "assistant")

# Short answers to the demo's open instructions (instructions._OPEN, in order).
_OPEN_ANSWERS = (
    "Red leaves drift and fall,\ncool wind hums through empty trees,\nautumn says goodbye.",
    "Put your phone away, study in short blocks with breaks, and set one clear goal per session.",
    "A prime number is a number bigger than 1 that you can only divide evenly by 1 and itself, like 2, 3, 5 and 7.",
    "Rise & Crumb: it sounds warm and friendly and says that bread rises there every morning.",
    "Water evaporates from seas and lakes and forms clouds. It falls back as rain or snow and flows to the sea again.",
    "Dear Sam, thank you for the invitation. I am unable to attend the meeting, but please share the notes. Best, Alex",
    "Regular exercise strengthens the heart, improves mood and sleep, and helps keep a healthy weight.",
    "Weather is the state of the air on a given day; climate is the average weather of a place over many years.",
    "Oranges, kiwis, strawberries and guavas are rich in vitamin C.",
    "Congratulations on the new job! Be curious, ask questions, and trust that you were chosen for good reasons.",
    "Sunlight is scattered by the air, and blue light is scattered the most, so the sky looks blue.",
    "A computer follows instructions to store, process and show information.",
    "Oatmeal with a sliced banana and a spoon of peanut butter: ready in five minutes.",
    "Recycling plastic saves resources and keeps plastic out of oceans and landfills.",
    "The sea rolls in with silver light,\nand hums the shore to sleep at night.",
    "Water, snacks, a map, sunscreen, a rain jacket and a charged phone.",
)
_ARITHMETIC = re.compile(r"What is (.+)\? Answer with the number\.")
_UNIT = re.compile(r"How many (\w+) are in (\d+) (\w+)\?")


def demo_sft_rows() -> list[dict]:
    """The demo instructions with answers, one source per kind (checkable answers in one style each)."""
    rows = []
    for item in demo_instructions():
        kind = item.id.split("-")[0]
        if kind in ("add", "sub", "mul"):
            expression = _ARITHMETIC.match(item.text).group(1).replace(" times ", " * ")
            answer, source = f"{expression} = {item.reference}. The answer is {item.reference}.", f"arithmetic.{kind}"
        elif kind == "unit":
            small, amount, large = _UNIT.match(item.text).groups()
            answer, source = f"There are {item.reference} {small} in {amount} {large}.", "units"
        else:
            answer, source = _OPEN_ANSWERS[int(item.id.split("-")[1])], "open"
        rows.append({"dataset": source, "id": item.id, "messages": [{"role": "user", "content": item.text},
                                                                    {"role": "assistant", "content": answer}]})
    return rows


def member_source(member: MemberConfig) -> str:
    return member.sft_source or member.name


def in_slice(source: str, wanted: str) -> bool:
    return source == wanted or source.startswith(wanted + ".")


def data_rows(sc: SFTConfig) -> Iterator[tuple[str, dict]]:
    """(location, row) of the SFT data: the demo set or the file, as stored."""
    if sc.data == "demo":
        fields = {"dataset": sc.source_field, "messages": sc.messages_field}
        for i, row in enumerate(demo_sft_rows()):
            yield at("demo", row=i), {fields.get(k, k): v for k, v in row.items()}
        return
    path = Path(sc.data)
    if not path.is_file():
        raise ConfigError(f"sft.data: no file at {path} (a .jsonl, .json or .parquet of chat rows, or 'demo')")
    yield from iter_rows(path, "sft.data")


def check_row(where: str, row: object, sc: SFTConfig) -> tuple[str, list[dict]]:
    """(source, messages) of a row, or ConfigError naming the row and the field."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected an object with fields {sc.source_field!r} and {sc.messages_field!r}")
    source = row.get(sc.source_field)
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{at(where, field=sc.source_field)} (sft.source_field) is missing or not a non-empty "
                          f"string; the row's fields: {sorted(row)}")
    messages = row.get(sc.messages_field)
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{at(where, field=sc.messages_field)} (sft.messages_field) is missing or not a "
                          f"non-empty list of messages; the row's fields: {sorted(row)}")
    for k, msg in enumerate(messages):
        if not (isinstance(msg, dict) and msg.get("role") in ROLES and isinstance(msg.get("content"), str)):
            raise ConfigError(f"{where}: message {k} of field {sc.messages_field!r} is not "
                              f'{{"role": "system"|"user"|"assistant", "content": "..."}}: {str(msg)[:200]}')
    return source, messages


def to_example(messages: list[dict]) -> dict | None:
    """TRL's conversational prompt-completion row: the last assistant answer and all before it;
    None when there is no non-empty answer after a user turn."""
    for j in range(len(messages) - 1, 0, -1):
        if messages[j]["role"] == "assistant" and messages[j]["content"].strip():
            prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:j]]
            if not any(m["role"] == "user" for m in prompt):
                return None
            return {"prompt": prompt, "completion": [{"role": "assistant", "content": messages[j]["content"]}]}
    return None


def check_settings(cfg: Config) -> None:
    s = cfg.sft
    for name in ("batch_size", "gradient_accumulation_steps", "max_length", "save_steps"):
        require(f"sft.{name}", getattr(s, name))
    if s.max_examples is not None:
        require("sft.max_examples", s.max_examples, " or null (the whole slice)")
    if s.learning_rate <= 0 or (s.epochs <= 0 and s.max_steps <= 0):
        raise ConfigError("sft: need learning_rate > 0, and epochs > 0 or max_steps > 0")
    require("sft.warmup_ratio", s.warmup_ratio, " (a share of the steps)")
    for i, m in enumerate(cfg.members):
        if m.name == "done":  # RUN/sft/done/ holds the stage's markers
            raise ConfigError(f"tribe.members.{i}: the name 'done' is taken by RUN/sft/done/ when sft.data is set; "
                              "rename the member")
        if m.sft_source is not None and not m.sft_source:
            raise ConfigError(f"tribe.members.{i}.sft_source: empty; give a source value or null (the member's name)")


def check_sft(cfg: Config) -> dict[str, dict]:
    """Every check of the sft section, reading the whole data file once (streamed), before any job.

    Returns per member: {"source", "rows" (usable rows in its slice), "used" (after max_examples)}.
    Raises ConfigError naming the file, row and field, or the member whose slice is empty and the
    source values that exist. Empty when sft.data is not set.
    """
    sc = cfg.sft
    if sc.data is None:
        return {}
    check_settings(cfg)
    usable, skipped = Counter(), Counter()
    for where, row in data_rows(sc):
        source, messages = check_row(where, row, sc)
        (usable if to_example(messages) else skipped)[source] += 1
    where = "the demo set" if sc.data == "demo" else sc.data
    sizes = {}
    for i, m in enumerate(cfg.members):
        wanted = member_source(m)
        rows = sum(n for source, n in usable.items() if in_slice(source, wanted))
        if not rows:
            found = ", ".join(f"{s} ({n})" for s, n in sorted(usable.items())) or "none"
            empty = sum(n for source, n in skipped.items() if in_slice(source, wanted))
            raise ConfigError(
                f"tribe.members.{i} ({m.name!r}): its SFT slice {wanted!r} (sft_source, default: the name) is empty "
                f"in {where}" + (f" ({empty} rows there have no assistant answer)" if empty else "")
                + f"; the {sc.source_field!r} values there: {found}. Set tribe.members.{m.name}.sft_source to one "
                "of them (a prefix takes its 'prefix.*' values)")
        sizes[m.name] = {"source": wanted, "rows": rows,
                         "used": min(rows, sc.max_examples) if sc.max_examples else rows}
    return sizes


def member_examples(cfg: Config, member: int, seed: int) -> tuple[list[dict], int]:
    """(examples, usable rows in the slice) of member `member`: its slice in data order, or a
    sample of sft.max_examples of it drawn with `seed` (the same on every rank and rerun). The
    member's system prompt goes before each prompt that has no system message of its own."""
    sc, m = cfg.sft, cfg.members[member]
    wanted = member_source(m)
    examples = []
    for where, row in data_rows(sc):
        source, messages = check_row(where, row, sc)
        if in_slice(source, wanted) and (example := to_example(messages)):
            examples.append(example)
    total = len(examples)
    if sc.max_examples and total > sc.max_examples:
        keep = sorted(random.Random(seed).sample(range(total), sc.max_examples))
        examples = [examples[k] for k in keep]
    if m.system_prompt:
        for e in examples:
            if e["prompt"][0]["role"] != "system":
                e["prompt"].insert(0, {"role": "system", "content": m.system_prompt})
    return examples, total
