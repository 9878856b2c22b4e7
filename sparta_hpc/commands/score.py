"""`sparta-hpc score TASK PREDICTIONS.jsonl`: score responses that already exist, without a model.

Each line of PREDICTIONS.jsonl is `{"doc": <a row exactly as in the task's
data file>, "response": "<model text>"}`. The responses go through the same
lm-eval task (filters, metric, aggregation) as `EvalTask.score`. Prints one
JSON object to stdout:

    {"task": "gsm8k", "n": 3, "score": 0.667, "stderr": 0.333, "correct": [1, 0, 1]}

(`correct` per line, in input order; a response with no extractable answer
is wrong; `stderr` is null for a single line). A malformed line (not JSON, no doc or response,
a doc without a field the task needs) exits with status 2 and a message on
stderr naming the line and the field. Blank lines are skipped.

Run it as `python -m sparta_hpc.commands.score TASK FILE`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EvalDataError, InputError
from ..eval import data, harness

# TASK -> the task whose rows and metric it uses: any MATH level, any NormAd file.
CLI_TASKS: dict[str, data.TaskSpec] = {
    "gsm8k": data.SPECS["gsm8k"],
    "math": data.MATH_ANY,
    "medqa": data.SPECS["medqa"],
    "normad": data.SPECS["normad_country"],
    "kcross": data.SPECS["kcross"],
    "truthfulqa": data.SPECS["truthfulqa"],
}


def read_predictions(spec: data.TaskSpec, path: Path) -> tuple[list[dict], list[str]]:
    """The docs and responses of a predictions file, every line checked."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    docs, responses = [], []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{where}: not JSON ({err.msg})") from None
            if not isinstance(item, dict):
                raise InputError(f"{where}: a JSON {type(item).__name__}, not an object "
                                 f'{{"doc": ..., "response": ...}}')
            for field in ("doc", "response"):
                if field not in item:
                    raise InputError(f"{where}: no field {field!r}; each line is "
                                     f'{{"doc": <row of the data file>, "response": "<model text>"}}')
            if not isinstance(item["response"], str):
                raise InputError(f"{where}: field 'response' is a {type(item['response']).__name__}, not a string")
            try:
                data.check_row(spec, item["doc"], f"{where}: doc")
            except EvalDataError as err:
                raise InputError(str(err)) from None
            docs.append(item["doc"])
            responses.append(item["response"])
    if not docs:
        raise InputError(f"{path}: no predictions")
    return docs, responses


def score_predictions(task: str, path: Path) -> dict:
    """The score of a predictions file for TASK, as printed."""
    spec = CLI_TASKS[task]
    docs, responses = read_predictions(spec, path)
    lm_task = harness.build_task(spec.lm_eval_task, rows=docs)
    metric, score, stderr, samples = harness.score(lm_task, responses)
    return {"task": task, "n": len(samples), "score": score, "stderr": stderr,
            "correct": [s["correct"] for s in samples]}


DESCRIPTION = "Score existing responses with the evaluation tasks' lm-eval filters and metrics."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line of `sparta-hpc score` (and of `python -m sparta_hpc.commands.score`)."""
    parser.add_argument("task", choices=sorted(CLI_TASKS), help="the task the docs come from")
    parser.add_argument("predictions", type=Path, help='JSONL: {"doc": <data file row>, "response": "<text>"} per line')


def command(args: argparse.Namespace) -> int:
    """Print the score as one JSON object; 2 for a predictions file that is refused."""
    try:
        result = score_predictions(args.task, args.predictions)
    except InputError as err:
        print(f"sparta-hpc score: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparta-hpc score", description=DESCRIPTION)
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
