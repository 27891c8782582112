"""Serve a recording made with `--record DIR`: the real API's shapes, for reproducing a problem."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Left out of the lookup: a replayed run's filter depends on its cursors, not on the recording's.
IGNORED_PARAMS = frozenset({"modifiedAtOrAfter"})

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Recorded:
    status: int
    content_type: str
    payload: bytes


class Replay:
    """Recorded answers by path and query; the newest wins where one was recorded twice."""

    def __init__(self, answers: dict[Key, Recorded]) -> None:
        self.answers = answers

    @classmethod
    def load(cls, folder: Path) -> Replay:
        answers: dict[Key, Recorded] = {}
        files = sorted(folder.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"no recorded responses (*.json) in {folder}")
        for file in files:
            entry = json.loads(file.read_text(encoding="utf-8"))
            if "json" not in entry:
                continue
            payload = json.dumps(entry["json"], separators=(",", ":")).encode()
            answers[key(entry["path"], entry["query"])] = Recorded(
                int(entry["status"]), entry.get("content_type") or "application/json", payload
            )
        return cls(answers)

    def answer(self, path: str, query: dict[str, str]) -> Recorded | None:
        return self.answers.get(key(path, query))


def key(path: str, query: dict[str, str]) -> Key:
    return path.rstrip("/"), tuple(sorted((k, v) for k, v in query.items() if k not in IGNORED_PARAMS))
