"""Regenerate or check the command outputs pasted in README.md.

Every pasted output sits between markers that name the command producing it::

    <!-- generated: dynverify regions usam --lr 0.1 -->
    ```
    $ dynverify regions usam --lr 0.1
    ...output...
    ```
    <!-- end generated -->

The commands run in order, with ``bash``, in one scratch directory (so a ``replay`` block
can use the records of the ``check`` block before it), with this Python's ``dynverify`` on
PATH and ``CI``/``DYNVERIFY_REPORTS`` unset. Python files shown in the README whose first
line is ``# NAME.py`` are written there first (the plug-in example). The first line of
the fenced block (``$ ...``) is what the reader sees and is kept as written, so a block can
show a readable command while the marker runs a scriptable one. Run ids and record hashes
are written as ``<run-id>`` and ``<hash>``.

Usage::

    python tests/readme_outputs.py             # report stale blocks as diffs (exit 1)
    python tests/readme_outputs.py --update    # rewrite the stale blocks in place
    python tests/readme_outputs.py --only regions   # blocks whose command contains it

The test suite (tests/test_readme.py) checks the cheap, deterministic blocks this way.
It lives beside the tests because the tests are its main user; it is not installed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- generated: (?P<cmd>.+?) -->\n(?P<fence>```[^\n]*\n)(?P<body>.*?)```\n"
                   r"<!-- end generated -->", re.S)
SOURCE = re.compile(r"```python\n# (?P<name>[\w/]+\.py)\n(?P<code>.*?)```", re.S)
MASKS = [(re.compile(r"\d{8}T\d{6}-\d{6}-\d+"), "<run-id>"),
         (re.compile(r"-[0-9a-f]{10}\.(json|md)\b"), r"-<hash>.\1")]


@dataclass
class Block:
    command: str
    body: str
    start: int
    end: int

    @property
    def shown(self) -> str:
        """The ``$ ...`` line the reader sees (kept as written)."""
        first = self.body.split("\n", 1)[0]
        return first if first.startswith("$ ") else f"$ {self.command}"


def blocks(text: str) -> list[Block]:
    return [Block(m["cmd"], m["body"], m.start(), m.end()) for m in BLOCK.finditer(text)]


def mask(text: str) -> str:
    for pattern, repl in MASKS:
        text = pattern.sub(repl, text)
    return text


def scratch(text: str) -> Path:
    """A scratch directory holding the README's example Python files."""
    work = Path(tempfile.mkdtemp(prefix="dynverify-readme-"))
    # the README's benchmark commands are written as run from the repository root
    (work / "benchmarks").symlink_to(Path(__file__).resolve().parents[1] / "benchmarks")
    for m in SOURCE.finditer(text):
        path = work / m["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {m['name']}\n{m['code']}", encoding="utf-8")
    return work


def run(command: str, work: Path, timeout: float = 900) -> str:
    """The command's stdout and stderr, as a terminal shows them, masked."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "DYNVERIFY_REPORTS", "PYTHONPATH", "COLUMNS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return mask(proc.stdout)


def render(block: Block, output: str) -> str:
    return f"{block.shown}\n{output.rstrip()}\n"


def regenerate(text: str, select: Callable[[Block], bool] = lambda b: True
               ) -> list[tuple[Block, str]]:
    """(block, fresh body) for each selected block, run in order in one scratch dir."""
    work = scratch(text)
    return [(b, render(b, run(b.command, work))) for b in blocks(text) if select(b)]


def stale(fresh: list[tuple[Block, str]]) -> list[str]:
    """A unified diff per block whose pasted output differs from the fresh one."""
    diffs = []
    for b, body in fresh:
        if mask(b.body) != body:
            diffs.append("".join(difflib.unified_diff(
                mask(b.body).splitlines(True), body.splitlines(True),
                f"README: {b.command}", "fresh output")))
    return diffs


def update(text: str, fresh: list[tuple[Block, str]]) -> str:
    for b, body in sorted(fresh, key=lambda x: -x[0].start):  # from the end: offsets hold
        m = BLOCK.match(text, b.start)
        assert m is not None
        new = (f"<!-- generated: {b.command} -->\n{m['fence']}{body}```\n"
               "<!-- end generated -->")
        text = text[:b.start] + new + text[b.end:]
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--update", action="store_true", help="rewrite stale blocks in place")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="only blocks whose command contains TEXT (repeatable)")
    p.add_argument("--file", type=Path, default=README)
    args = p.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    fresh = regenerate(text, lambda b: not args.only or any(s in b.command for s in args.only))
    diffs = stale(fresh)
    if args.update:
        if diffs:
            args.file.write_text(update(text, fresh), encoding="utf-8")
        print(f"{len(diffs)} of {len(fresh)} generated blocks rewritten")
        return 0
    for d in diffs:
        print(d)
    print(f"{len(diffs)} of {len(fresh)} generated blocks stale")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
