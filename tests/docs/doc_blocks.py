"""The fenced ```bash blocks of README.md and docs/*.md, with the annotation just above each:

<!-- not-run: <reason> -->            not run; the reason must say what is missing here
<!-- run-with: stack -->              run while a local stack (compose ports) is up
<!-- run: server <url> -->            a server: started, waited for on <url>, stopped
(none)                                run as written from the repository root, must exit 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
ANNOTATION = re.compile(r"^<!-- (not-run|run-with|run): (.+?) -->$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    kind: str  # "run", "not-run", "run-with", "server"
    argument: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        annotation = ANNOTATION.match(before[-1].strip()) if before else None
        kind, argument = ("run", "")
        if annotation:
            kind, argument = annotation.groups()
            if kind == "run":
                verb, _, argument = argument.partition(" ")
                assert verb == "server", f"{path}: unknown annotation run: {verb}"
                kind = "server"
        line = text[: match.start()].count("\n") + 1
        found.append(Block(path, line, match.group(1), kind, argument.strip()))
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]
