"""Fuzzed config and instruction files: whatever a bad one holds (wrong types, out-of-range, huge,
NaN or negative numbers, unicode, duplicated names or ids, deep nesting, a non-mapping top level,
binary garbage), the driver ends with exit code 2, a message naming the field or the file, and
nothing written: no run directory. A traceback here is a bug.

The strategies build invalid input by construction (a valid base with one bad part), so every
example must be refused. Examples per run: the `fast` profile's count times EXAMPLES_FACTOR each
(HYPOTHESIS_PROFILE=thorough for ten times more); --hypothesis-show-statistics prints them.
"""

import dataclasses
import json
import logging
import re
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparta_hpc import driver
from sparta_hpc.config.overrides import field_types
from sparta_hpc.config.ranges import RANGES, range_of
from sparta_hpc.config.schema import Config, TrainConfig

EXAMPLES_FACTOR = 3  # x the profile's max_examples (50 fast, 500 thorough)
FUZZ = settings(max_examples=settings.default.max_examples * EXAMPLES_FACTOR, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

MEMBERS = ["ada", "bo", "cy"]
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}  # an "unknown" train field is none of these


def leaves(cls: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """(dotted path, type) of every scalar, list or mapping field of the config (member 0 for members)."""
    out = []
    for f in dataclasses.fields(cls):
        typ, name = field_types(cls)[f.name], prefix + f.name
        if dataclasses.is_dataclass(typ):
            out += leaves(typ, name + ".")
        elif typing.get_origin(typ) is list and dataclasses.is_dataclass(typing.get_args(typ)[0]):
            out += leaves(typing.get_args(typ)[0], name + ".0.")
        else:
            out.append((name, typ))
    return out


FIELDS = [(name, typ) for name, typ in leaves(Config) if name != "run.dir"]


def base(folder: Path) -> dict:
    model = folder / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return {"run": {"dir": str(folder / "run")}, "tribe": {"iterations": 1, "duels_per_iteration": 4,
            "members": [{"name": n, "model": str(model)} for n in MEMBERS]}, "cluster": {"executor": "debug"}}


def put(data: dict, dotted: str, value) -> dict:
    """`data` with `value` at `dotted`; a missing list (cluster.models.0.model) gets its one element."""
    node, keys = data, dotted.split(".")
    for key, after in zip(keys[:-1], keys[1:]):
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, [{}] if after.isdigit() else {})
    node[keys[-1]] = value
    return data


TEXT = st.text(min_size=1, max_size=12)
JUNK = st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(TEXT, st.integers(), min_size=1,
                                                                               max_size=2))


def bad_value(name: str, typ) -> st.SearchStrategy:
    """Values `name` (of type `typ`) must refuse."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        (typ,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        return st.one_of(TEXT.filter(lambda s: s not in args and s.lower() not in ("null", "none")), JUNK)
    if origin is list:
        return st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(JUNK, min_size=1, max_size=2))
    if origin is dict:
        wrong = [st.lists(st.integers(), min_size=1, max_size=3), st.integers(),
                 TEXT.filter(lambda s: s.lower() not in ("null", "none"))]
        if args[1] is str:  # a mapping whose values are not texts (eval.files, extra_sbatch)
            wrong.append(st.dictionaries(TEXT, JUNK, min_size=1, max_size=2))
        return st.one_of(wrong)
    if typ is bool:
        return st.one_of(st.integers(2, 10**6), st.floats(0.1, 0.9), TEXT.filter(
            lambda s: s.lower() not in ("true", "yes", "1", "false", "no", "0", "null", "none")), JUNK)
    if typ is str:
        return st.one_of(JUNK, st.booleans())
    numbers = [st.integers(10**12, 10**40), st.integers(-10**40, -10**12), st.just(float("nan")),
               st.just(float("inf")), st.just(-float("inf")), JUNK,
               TEXT.filter(lambda s: not _is_number(s) and s.lower() not in ("null", "none"))]
    if typ is int:
        numbers.append(st.floats(-1e6, 1e6).filter(lambda x: x != int(x)))
    r = range_of(name)
    if r is not None:  # just outside its range
        if r.lo is not None:
            numbers.append(st.just(r.lo if r.lo_open else r.lo - 1))
        if r.hi is not None:
            numbers.append(st.just(r.hi if r.hi_open else r.hi + 1))
    return st.one_of(numbers)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@st.composite
def bad_field(draw):
    name, typ = draw(st.sampled_from(FIELDS))
    return name, draw(bad_value(name, typ))


def structural() -> st.SearchStrategy:
    """(mutation of the base dict or whole file bytes, what the message must name)."""
    deep = st.integers(50, 400).map(lambda n: ("nest", n))
    return st.one_of(
        st.tuples(st.just("top"), st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.floats(),
                                            TEXT, st.booleans())),
        st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=200)),
        st.tuples(st.just("name"), st.one_of(st.text(min_size=1, max_size=10).filter(lambda s: not s.isascii()),
                                             st.sampled_from(["../up", "a/b", ".hidden", "", "done", "manifest",
                                                              "x" * 65, "nul\x00", "tab\tname"]))),
        st.tuples(st.just("duplicate"), st.sampled_from(MEMBERS)),
        st.tuples(st.just("unknown"), st.text(min_size=1, max_size=12).filter(lambda s: s not in TRAIN_FIELDS)),
        deep,
        st.just(("empty", None)),
    )


def run_driver(folder: Path, content: bytes, caplog) -> tuple[int, str]:
    """The driver's exit code and its error messages (what the user reads, not the info lines)."""
    config = folder / "config.yaml"
    config.write_bytes(content)
    caplog.clear()
    try:
        code = driver.main(["--config", str(config)])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def naming(name: str) -> str:
    """A pattern for `name` as a whole dotted name: not the tail of a longer one (evaluator.max_new_tokens
    in eval.evaluator.max_new_tokens), nor cut off inside a word; an element (.0) may follow."""
    return rf"(?<![\w.]){re.escape(name)}(?!\w)"


def assert_refused(folder: Path, code: int, log: str, patterns: list[str]) -> None:
    assert code == 2, log
    assert any(re.search(p, log) for p in patterns), f"the message matches none of {patterns}: {log}"
    assert not (folder / "run").exists(), "something was written before the checks passed"


@FUZZ
@given(bad=bad_field())
def test_a_bad_field_is_refused_naming_it(bad, caplog):
    name, value = bad
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = put(base(folder), name, value)
        code, log = run_driver(folder, yaml.safe_dump(data, allow_unicode=True).encode(), caplog)
        assert_refused(folder, code, log, [naming(name)])


@FUZZ
@given(case=structural())
def test_a_malformed_config_file_is_refused_naming_the_file_or_field(case, caplog):
    kind, value = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, names = base(folder), [re.escape(f"{folder / 'config.yaml'}: ")]
        no_members = re.escape("tribe.members: no members")
        if kind == "top":
            content = yaml.safe_dump(value).encode()
        elif kind == "bytes":
            content = value
            names.append(no_members)  # garbage can parse as an empty mapping (every default: no members)
        elif kind == "name":
            data["tribe"]["members"][1]["name"] = value
            content, names = yaml.safe_dump(data, allow_unicode=True).encode(), [naming("tribe.members.1.name")]
        elif kind == "duplicate":
            data["tribe"]["members"][0]["name"] = data["tribe"]["members"][2]["name"] = value
            member_names = [m["name"] for m in data["tribe"]["members"]]  # bo: all three are "bo"
            second = next(i for i, n in enumerate(member_names) if n in member_names[:i])
            content = yaml.safe_dump(data).encode()
            names = [re.escape(f"tribe.members.{second}.name: duplicate member name {value!r}")]
        elif kind == "unknown":
            data["train"] = {value: 1}
            content = yaml.safe_dump(data, allow_unicode=True).encode()
            # the key as YAML reads it back: a line break in a plain key (e.g. U+0085) folds to a space
            (key,) = yaml.safe_load(content)["train"]
            names = [re.escape(f"unknown config field {f'train.{key}'!r}")]
        elif kind == "nest":
            nested: object = 1
            for _ in range(value):
                nested = {"x": nested}
            data["train"] = {"beta": nested}
            content, names = yaml.safe_dump(data).encode(), [re.escape("train.beta: expected a number")]
        else:
            content, names = b"", [no_members]
        code, log = run_driver(folder, content, caplog)
        assert_refused(folder, code, log, names)


def instruction_file() -> st.SearchStrategy:
    """(file name, bytes) of an instruction file that must be refused."""
    row = st.fixed_dictionaries({"instruction": st.one_of(st.none(), st.integers(), st.just(""), st.just("  \n"),
                                                          st.lists(TEXT, max_size=2), st.just({"a": 1}))})
    surrogate = st.sampled_from(['{"instruction": "bad \\ud800 surrogate"}', '{"instruction": "nul \\u0000 x"}',
                                 '{"instruction": "esc \\u001b[31m"}'])
    good = '{"instruction": "What is 2 + 2?", "id": "a"}\n'
    return st.one_of(
        st.tuples(st.sampled_from(["i.jsonl", "i.json"]), st.binary(min_size=1, max_size=300)).filter(
            lambda case: not _valid_instructions(*case)),
        st.tuples(st.just("i.jsonl"), st.lists(row, min_size=1, max_size=3).map(
            lambda rows: (good + "".join(json.dumps(r) + "\n" for r in rows)).encode())),
        st.tuples(st.just("i.jsonl"), surrogate.map(lambda line: (good + line + "\n").encode())),
        st.tuples(st.just("i.json"), st.one_of(st.dictionaries(TEXT, st.integers(), max_size=2), st.integers(),
                                               TEXT).map(lambda v: json.dumps(v).encode())),
        st.tuples(st.just("i.jsonl"), st.integers(2, 5).map(lambda n: (good * n).encode())),  # duplicate ids
        st.tuples(st.just("i.json"), st.integers(1000, 100_000).map(lambda n: ("[" * n + "]" * n).encode())),
        st.tuples(st.just("i.jsonl"), st.just(b"")),
        st.tuples(st.sampled_from(["i.csv", "i.txt", "i"]), st.binary(max_size=50)),
    )


def _valid_instructions(name: str, raw: bytes) -> bool:
    """Whether random bytes happen to be a usable instruction file (then they are not a bad example)."""
    try:
        text = raw.decode()
        # lines as the loader reads them: split at "\n" only (not at U+2028 or U+0085, as splitlines() would)
        rows = json.loads(text) if name.endswith(".json") else [json.loads(line) for line in text.split("\n")
                                                                if line.strip()]
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(rows, list):
        return False
    return bool(rows) and all(isinstance(r, dict) and isinstance(r.get("instruction"), str) for r in rows)


@FUZZ
@given(case=instruction_file())
def test_a_bad_instruction_file_is_refused_naming_it(case, caplog):
    name, content = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / name
        source.write_bytes(content)
        data = base(folder)
        data["instructions"] = {"source": str(source), "id_field": "id" if b'"id"' in content else None}
        code, log = run_driver(folder, yaml.safe_dump(data).encode(), caplog)
        assert_refused(folder, code, log, [naming(str(source))])  # every message names the file


def test_every_ranged_field_exists():
    """A range for a field that no longer exists would silently check nothing."""
    names = {name for name, _ in FIELDS}
    for pattern in RANGES:
        concrete = pattern.replace("tribe.members.*", "tribe.members.0").replace("cluster.*", "cluster.train")
        assert concrete in names, pattern


@pytest.mark.parametrize("name", ["ada", "bo"])
def test_a_valid_base_config_passes_the_checks(name, tmp_path, caplog):
    """The fuzzed examples differ from an accepted config by their one bad part (a dry run)."""
    data = base(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert driver.main(["--config", str(tmp_path / "config.yaml"), "--dry-run"]) == 0, caplog.text
