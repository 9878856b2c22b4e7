"""The project's exceptions: one family under `SpartaError`, each with the exit status it ends a command with.

    2  refused before anything ran: a config, an input file, a run directory that is not one
    1  failed while running: a task out of retries, a damaged or missing file of the run, a full disk

A command's top-level handler (`sparta-hpc`'s main, the driver's) logs the message and returns
`err.exit_code`, so the status of a failure is decided here, once, not in each command.
Each class also keeps the built-in base it had (ValueError, RuntimeError, OSError), so code that
catches those goes on catching it.

Input errors name their place with `at`: `path:line: field 'name'`, the format every reader of
rows and every check of a row writes. This module imports nothing from the package: it is the
bottom layer, importable from anywhere.
"""

from __future__ import annotations

from os import PathLike


def at(place: str | PathLike, line: int | None = None, field: str | None = None, row: int | None = None) -> str:
    """Where an input error is: `path:12`, `path[3]` (the 4th element of a JSON list or Parquet
    file), `path: field 'name'`, or `path:12: field 'name'`. `place` may already be a location
    (`at(at(path, 12), field="q")`)."""
    out = str(place)
    if line is not None:
        out += f":{line}"
    if row is not None:
        out += f"[{row}]"
    if field is not None:
        out += f": field {field!r}"
    return out


class SpartaError(Exception):
    """Any error the project raises on purpose; the message names the file, field or task and what to do."""

    exit_code = 1


# refused before anything ran (exit status 2)

class ConfigError(SpartaError, ValueError):
    """A config file or override is wrong; the message names the field and what to do."""

    exit_code = 2


class ReplayInputError(SpartaError, ValueError):
    """`sparta-hpc replay`: a ratings or duels file is malformed; the message names the place."""

    exit_code = 2


class InputError(SpartaError, ValueError):
    """`sparta-hpc score`: a predictions file that cannot be scored; the message names the line."""

    exit_code = 2


class EvalDataError(SpartaError, ValueError):
    """A task's data cannot be used: the message names the task, the file, the field and the fix."""

    exit_code = 2


class ExportError(SpartaError, RuntimeError):
    """`sparta-hpc export`: the iteration is not aggregated yet, or the run has no duels to replay."""

    exit_code = 2


class StatusError(SpartaError, RuntimeError):
    """Not a run directory, or one whose config cannot be read; the message says which file."""

    exit_code = 2


class PrepareError(SpartaError, RuntimeError):
    """`data prepare` cannot go on: the message names the file and what to do."""

    exit_code = 2


class SourceMissing(PrepareError):
    """A source file is not in the copy that was given."""


class SourceChanged(PrepareError):
    """A source file's bytes differ from its pin."""


# failed while running (exit status 1)

class StageFailed(SpartaError, RuntimeError):
    """A task kept failing; the message names the stage, the task and its log."""


class DamagedFile(SpartaError, RuntimeError):
    """A finished file is missing or differs from its record; the message names it and what to do."""


class BadRecord(SpartaError, ValueError):
    """A unit's record that does not parse, lacks a field, or names another unit than its file does."""


class RatingsError(SpartaError, ValueError):
    """A ratings file of the run (RUN/ratings/iter_NNNN.json) that is missing, does not parse or lacks
    a member; the message names the file, the member and the field."""


class DiskFull(SpartaError, OSError):
    """No space left (or the quota is used up) while writing a file of the run; the message names
    the file, the space left on its file system and what to do."""


class NonFiniteLoss(SpartaError, RuntimeError):
    """A member's training loss became NaN or infinite; the message names the member and the step."""


class SubmitError(SpartaError, RuntimeError):
    """sbatch refused a driver job; the message has its command and answer."""
