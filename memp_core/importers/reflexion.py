"""Reflexion's ``env_results_trial_N.json`` files (ALFWorld), one file or a folder of them.

Each file is a JSON list with one object per game: ``{"name": "env_12", "memory": [...],
"is_success": bool}``. A folder (or a single file) is one run with one group per trial,
ordered by N; every game in every trial becomes an outcome record (no steps: Reflexion
keeps only the verdict and the reflections in ``memory``). The run's curve is computed from
these records, so it equals the files' own counts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memp_core.errors import ImportFormatError
from memp_core.importers.jsonstream import json_kind, json_members
from memp_core.importers.records import (
    BadRecord,
    ImportWarning,
    Item,
    RunRecord,
    TrajectoryRecord,
)
from memp_core.importers.source import (
    Progress,
    TextFile,
    hash_into,
    head_text,
    json_path,
    load_json,
    open_text,
    type_name,
)

TRIAL_FILE = re.compile(r"trial_(\d{1,9})\.json$", re.I)


def trial_files(path: Path) -> list[tuple[int, Path]]:
    """``(N, file)`` ordered by N; a folder must hold at least one trial file."""
    if path.is_dir():
        found = [(int(m.group(1)), p) for p in path.iterdir() if (m := TRIAL_FILE.search(p.name))]
        if not found:
            reason = "folder holds no env_results_trial_N.json files"
            raise ImportFormatError(str(path), None, reason)
        return sorted(found)
    m = TRIAL_FILE.search(path.name)
    return [(int(m.group(1)) if m else 0, path)]


def parse(path: Path, progress: Progress | None = None) -> Iterator[Item]:
    files = trial_files(path)
    checked: list[tuple[int, TextFile]] = []
    digest = hashlib.sha256()
    for n, file in files:  # every file checked and hashed before the run is announced
        src = _trial_file(file)
        digest.update(f"{n}:".encode())
        hash_into(src, digest)
        checked.append((n, src))
    run = RunRecord(
        name=path.name if path.is_dir() else path.parent.name or path.stem,
        agent="reflexion",
        environment="alfworld",
        fingerprint=digest.hexdigest(),
        source_file=str(path),
        n_groups=len(checked),
        config={"format": "reflexion", "trials": [n for n, _ in checked]},
    )
    yield run
    first_names: list[str] | None = None
    for index, (n, src) in enumerate(checked):
        names: list[str] = []
        games = 0
        for i, entry in json_members(src, progress):  # one game at a time
            games += 1
            item = _record(entry, src.name, (i,), n, index, run)
            if isinstance(item, TrajectoryRecord):
                names.append(item.facts["env"])
            yield item
        if not games:  # blank space hid the empty array from the early check
            raise ImportFormatError(src.name, "$", "empty array: the trial lists no games")
        if first_names is None:
            first_names = names
        elif sorted(names) != sorted(first_names):
            msg = (
                f"trial {n} lists {len(names)} games, trial {checked[0][0]} listed "
                f"{len(first_names)}; rates are over the games present"
            )
            yield ImportWarning(src.name, None, msg)


def _trial_file(file: Path) -> TextFile:
    """A text file holding a non-empty JSON array (the games are read later, one by one)."""
    src = open_text(file)
    if json_kind(src) != "array":
        data = load_json(src)  # not an array: its own JSON error, or the wrong type below
        reason = f"expected a JSON array of game results, got {type_name(data)}"
        raise ImportFormatError(src.name, "$", reason)
    if head_text(src, 4096).lstrip()[1:].lstrip()[:1] == "]":
        raise ImportFormatError(src.name, "$", "empty array: the trial lists no games")
    return src


def _record(
    entry: Any, name: str, parts: tuple[int, ...], trial: int, index: int, run: RunRecord
) -> Item:
    def bad(sub: tuple[str | int, ...], reason: str) -> BadRecord:
        return BadRecord(ImportFormatError(name, json_path(parts + sub), reason))

    if not isinstance(entry, dict):
        return bad((), f"expected a game result object, got {type_name(entry)}")
    env = entry.get("name")
    if not isinstance(env, str) or not env.strip():
        return bad(("name",), f"'name' must be a non-empty string, got {type_name(env)}")
    success = entry.get("is_success")
    if not isinstance(success, bool):
        return bad(("is_success",), f"'is_success' must be true or false, got {success!r}")
    memory = entry.get("memory", [])
    if not isinstance(memory, list) or not all(isinstance(m, str) for m in memory):
        return bad(("memory",), "'memory' must be an array of strings")
    extra = {k: v for k, v in entry.items() if k not in ("name", "is_success", "memory")}
    return TrajectoryRecord(
        task=f"alfworld {env}",
        success=success,
        where=json_path(parts),
        environment="alfworld",
        reward=1.0 if success else 0.0,
        facts={**extra, "env": env, "trial": trial, "outcome_only": True},
        reflections=list(memory),
        run=run,
        group_index=index,
        hash_salt=f"{run.fingerprint}:trial:{trial}",
        source_file=name,
    )
