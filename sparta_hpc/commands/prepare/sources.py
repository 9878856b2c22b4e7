"""The public sources of `sparta-hpc data prepare`, pinned: repository, commit, and each file's hashes.

Three repositories hold the paper's data (docs/data.md):

- github.com/yurujiang2003/sparta (MIT), the SPARTA authors' per-task training files under data/;
- github.com/BunsenFeng/model_swarm (Apache-2.0), their group's evaluation splits under data/eval/;
- github.com/tatsu-lab/alpaca_eval (Apache-2.0), AlpacaEval's 805 instructions for the Alpaca column,
  which has no published split of the group's (the paper's Table 1 rates Alpaca answers 1-10).

A source location is a URL (cloned once into a cache folder, then read at the pinned commit) or a
local path: a git checkout or bare git directory (read at the pinned commit with `git show`, so the
work tree's state does not matter), or a plain folder of the files (for a cluster whose compute nodes
are offline and got a copy some other way). Every file read is checked against its pinned sha256 and
git blob id: a changed file is refused, naming it. The git blob id is pinned as well because four
large sparta files are absent from the copy these pins were computed from, so their sha256 is not
known here, while their blob ids are (from the commit's tree); a plain folder is checked by it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

from ...errors import PrepareError, SourceChanged, SourceMissing

log = logging.getLogger("sparta_hpc.commands.prepare")

SPARTA, MODEL_SWARM, ALPACA_EVAL = "sparta", "model_swarm", "alpaca_eval"
REPOS = (SPARTA, MODEL_SWARM, ALPACA_EVAL)

# From the bare mirrors at these commits (git ls-tree; sha256 of `git show COMMIT:PATH`).
# sha256 None: the blob is absent from that mirror, so only its git blob id is pinned.
PINS: dict[str, dict] = {
    SPARTA: {
        "url": "https://github.com/yurujiang2003/sparta",
        "commit": "05a2aab0bfced32fa9b9c42ab6e52fc4e1ee05db",
        "files": {
            "data/MATH/train_by_difficulty/easy.jsonl": {
                "blob": "28ed9afc152033b2239088caca00c4c0d76aa4f9",
                "sha256": "7d63e67dda5e59c29896fc67a4a607c284d83af0be69c856d886d720779940b7"},
            "data/MATH/train_by_difficulty/medium.jsonl": {
                "blob": "93e255c8ee0cfdbee54cbd31a49fb327f4f52de2",
                "sha256": "12a1af3fa7c63b545d3a646b49e174d8305bf940a75bda038c7a4c6a2114c9ca"},
            "data/MATH/train_by_difficulty/hard.jsonl": {
                "blob": "ebc98ad280511f97d11c5c6e84bebb4874cc35a8", "sha256": None},
            "data/alpaca/alpaca_data_processed.json": {
                "blob": "6b4c4f9f4c08e17db327c9c6bb11d026c8a5686c", "sha256": None},
            "data/com2/train.json": {
                "blob": "5623831c50fb8ec1b77de317755467a3b81ddda1",
                "sha256": "4148e2017929cb79d47c1fa71c62018b1275e9a6642b20a0db75b6c104f44234"},
            "data/culture/country_dataset.json": {
                "blob": "48d426db4e507d2f060020e6a70db917279d3ed0",
                "sha256": "ffa2ffb2cbfe307ff154ea214a59d976bdf4a4794233f15c7bf9c893cc679c7c"},
            "data/culture/country_value_dataset.json": {  # a byte copy of country_dataset.json
                "blob": "48d426db4e507d2f060020e6a70db917279d3ed0",
                "sha256": "ffa2ffb2cbfe307ff154ea214a59d976bdf4a4794233f15c7bf9c893cc679c7c"},
            "data/culture/rule_of_thumb.json": {
                "blob": "0de49256d4355075b8742f1721ef9904985e5103", "sha256": None},
            "data/gsm8k/questions.json": {
                "blob": "4896d5afc1303cfbc93df08fa0452f81b99f2fcb",
                "sha256": "30b8e253b4051a77d4fbeea642c93263848da8b0bf8b17efc0befd5610dabb6c"},
            "data/knowledge_crosswords/train.json": {
                "blob": "36889ce3752b8fd2c71e7721b1b93f22256f1d29",
                "sha256": "142c07c0823389c7b6099dee38c1984b0f91c8e3890d550a723136e54aaca746"},
            "data/medqa/US_train_processed.json": {
                "blob": "afc94444bf544868f3caae7067af1ee7acbb62d6", "sha256": None},
            "data/truthfulqa/data_train.jsonl": {
                "blob": "fc02dbab4916ad6d0ed6f3a1f473a3641888b08a",
                "sha256": "0c8e799c2bf177b8c3af722b7fe50813cf4d35217363375f3eac47095e097ffd"},
        },
    },
    MODEL_SWARM: {
        "url": "https://github.com/BunsenFeng/model_swarm",
        "commit": "63e640401dc9cfa8fe9790b4fa7ba74451386fa1",
        "files": {
            "data/eval/gsm8k.json": {
                "blob": "c8a0195e91caf5cbf2dedf446396b83358d197a0",
                "sha256": "2c9543382d0580e7c1f205b240c6b750d0709f641e6821f6175e3ab8e83a8a2a"},
            "data/eval/medqa.json": {
                "blob": "ddc9232b7e74a6266163f49f678698818fef077f",
                "sha256": "f34e73b1dd786955b58aa5df08aa5f3342e803fa82514de16775513c1858a5aa"},
            "data/eval/normad_country.json": {
                "blob": "6892aeee67fe7756ba5dddc8f0b263b18fa9d051",
                "sha256": "596b82ad7c72de8d8f0c31481d94096d134571847702ed32b7f3997a27735d6a"},
            "data/eval/normad_value.json": {
                "blob": "c1efb99d4cf1f5875405dffbee029745386b0785",
                "sha256": "ca7a2306763bb861d3cca1fe64b8b61dcdd40954592c1dbd0220b45299ae63a3"},
            "data/eval/knowledge_crosswords.json": {
                "blob": "de905c565ebba54130c3b5a898ccc1d778f21f50",
                "sha256": "90e6444cc1f30f73805f4207d4088c35dfb86f71681be216c42868575560184e"},
            "data/eval/truthfulqa.json": {
                "blob": "8bc90607d6fb7e43240fb9cfee28e6f4f1ee543d",
                "sha256": "90b3fe34e00e5a94624a04e77377ec760b1f3ce96cb809c9eac5194f276852b2"},
        },
    },
    ALPACA_EVAL: {
        "url": "https://github.com/tatsu-lab/alpaca_eval",
        "commit": "cd543a149df89434d8a54582c0151c0b945c3d20",
        "files": {
            # AlpacaEval 2.0's reference outputs: the 805 evaluation instructions, each with its `dataset`
            # (the same instructions as the hub's tatsu-lab/alpaca_eval, which compute nodes cannot reach)
            "results/gpt4_1106_preview/model_outputs.json": {
                "blob": "b14cf950ba73803cdf8bcc891e3ea5af96f783ce",
                "sha256": "83db546b872ddebee8965fd05fa48461ee3c32bc695c62fb57f2d214ff741ec4"},
        },
    },
}


def load_pins(path: str | Path | None) -> dict[str, dict]:
    """The real pins, or those of a JSON file of the same shape (tests, or a deliberate re-pin)."""
    if path is None:
        return PINS
    try:
        pins = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PrepareError(f"--pins {path}: cannot read it as JSON ({err})") from None
    for name in (SPARTA, MODEL_SWARM):
        if name not in pins or not {"commit", "files"} <= set(pins[name]):
            raise PrepareError(f"--pins {path}: needs {{{name!r}: {{'commit', 'files': {{path: {{sha256, blob}}}}}}}}")
    pins.setdefault(ALPACA_EVAL, PINS[ALPACA_EVAL])  # a file that re-pins the paper's two repositories only
    return pins


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    """What `git hash-object` prints for these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True)


def _is_url(location: str) -> bool:
    return "://" in location or location.startswith("git@")


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "sparta_hpc", "sources")


class Source:
    """One pinned repository, read at its commit from a git directory or a plain folder."""

    def __init__(self, name: str, location: str | Path | None, pins: dict, cache: Path | None = None):
        self.name, self.pin = name, pins[name]
        self.commit = self.pin["commit"]
        location = str(location or self.pin.get("url", ""))
        if not location:
            raise PrepareError(f"{name}: no location given and the pins name no URL")
        self.location = location
        self.git_dir: str | None = None
        self.folder: Path | None = None
        if _is_url(location):
            self.git_dir = self._clone(location, Path(cache or default_cache()))
        elif not Path(location).exists():
            raise PrepareError(f"{name}: {location} does not exist; give a checkout of {self.pin.get('url', name)} "
                                f"(git clone, then it is read at commit {self.commit})")
        elif self._git_root(location):
            self.git_dir = location
        else:
            self.folder = Path(location)
        if self.git_dir and _git("-C", self.git_dir, "cat-file", "-e", f"{self.commit}^{{commit}}").returncode:
            raise PrepareError(f"{name}: {location} does not hold the pinned commit {self.commit}; "
                                f"run `git -C {location} fetch origin {self.commit}` (or clone it again)")

    @staticmethod
    def _git_root(location: str) -> bool:
        """Whether `location` itself is a git work tree's root or a bare git directory (not merely a
        folder inside some other repository, which git would also answer for)."""
        where = Path(location).resolve()
        bare = _git("-C", location, "rev-parse", "--is-bare-repository", "--absolute-git-dir")
        if bare.returncode:
            return False
        is_bare, git_dir = bare.stdout.decode().split("\n")[:2]
        if is_bare == "true":
            return Path(git_dir).resolve() == where
        top = _git("-C", location, "rev-parse", "--show-toplevel")
        return top.returncode == 0 and Path(top.stdout.decode().strip()).resolve() == where

    def _clone(self, url: str, cache: Path) -> str:
        dest = cache / f"{self.name}.git"
        if not dest.exists():
            log.info("prepare: cloning %s into %s", url, dest)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = cache / f".{self.name}.git.tmp"
            if tmp.exists():
                subprocess.run(["rm", "-rf", str(tmp)], check=True)
            done = _git("clone", "--bare", "--quiet", url, str(tmp))
            if done.returncode:
                raise PrepareError(f"{self.name}: cannot clone {url}: {done.stderr.decode().strip()[:300]}; "
                                    f"clone it where there is internet and pass the path instead")
            os.replace(tmp, dest)  # a half-finished clone never sits at the cached name
        elif _git("-C", str(dest), "cat-file", "-e", f"{self.commit}^{{commit}}").returncode:
            _git("-C", str(dest), "fetch", "--quiet", "origin", self.commit)
        return str(dest)

    def describe(self) -> dict:
        return {"url": self.pin.get("url"), "location": self.location, "commit": self.commit,
                "read_as": "git" if self.git_dir else "folder"}

    def read(self, path: str) -> bytes:
        """The file's bytes at the pinned commit, checked against its pins."""
        where = f"{self.name} {path}"
        pin = self.pin["files"].get(path)
        if pin is None:
            raise PrepareError(f"{where}: no sha256 pin for this file in sources.py (or --pins); "
                               "pin it before reading it")
        if self.git_dir:
            done = _git("-C", self.git_dir, "show", f"{self.commit}:{path}")
            if done.returncode:
                raise SourceMissing(
                    f"{where}: not in {self.location} at commit {self.commit[:12]} "
                    f"({done.stderr.decode().strip()[:200]}). Large files can be absent from partial copies: "
                    f"clone {self.pin.get('url', 'the repository')} in full (git lfs pull if it uses LFS) and "
                    "pass that checkout, then run the same command again")
            data = done.stdout
        else:
            file = self.folder / path
            if not file.is_file():
                raise SourceMissing(f"{where}: no file {file}; copy it there from {self.pin.get('url')} at commit "
                                    f"{self.commit} and run the same command again")
            data = file.read_bytes()
        got_sha, got_blob = sha256(data), git_blob_id(data)
        for kind, want, got in (("sha256", pin.get("sha256"), got_sha), ("git blob id", pin.get("blob"), got_blob)):
            if want and want != got:
                raise SourceChanged(f"{where}: its {kind} is {got}, the pinned one is {want}: the file changed "
                                    f"(or the copy is damaged). Refused; restore the file as at commit "
                                    f"{self.commit}, or re-pin it in sparta_hpc/commands/prepare/sources.py after checking")
        return data

    def source_record(self, path: str, data: bytes) -> dict:
        """What the manifest records about a source file that was read."""
        return {"repo": self.pin.get("url") or self.name, "commit": self.commit, "path": path,
                "sha256": sha256(data)}
