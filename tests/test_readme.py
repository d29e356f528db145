"""The README's shell examples, run as typed against a real server, so the docs cannot rot.

Every fenced `sh` block of README.md is run in order, command by command, with
bash in a scratch folder holding a copy of `corpus/`; `yomitoki` is this
environment's command line. The only change made to a command is the port:
`127.0.0.1:8000` becomes the free port the test's server listens on. A
`yomitoki serve` line starts that server (in the background, waited for until
healthy); later blocks talk to it.

A block that cannot run here (it needs `make`, the user's own models, files or
cluster) is marked on the line before its fence:

    <!-- readme-test: skip (why) -->

A command fails the test when it exits non-zero, when curl gets an error
body (`{"status_code": 4xx/5xx, …}`) or an `event: error`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import CORPUS, ROOT, free_port

README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b.*-->")
DEFAULT_URL = "127.0.0.1:8000"


@dataclass(frozen=True)
class Example:
    line: int      # where the command starts in README.md
    command: str   # as typed (continuation lines joined by bash itself)


def shell_blocks(text: str) -> tuple[list[list[Example]], list[int]]:
    """The runnable `sh` blocks as lists of commands, and the lines of the blocks marked to skip."""
    lines = text.splitlines()
    blocks: list[list[Example]] = []
    skipped: list[int] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() in ("```sh", "```bash"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marked = i > 0 and SKIP.search(lines[i - 1]) is not None
            if marked:
                skipped.append(i + 1)
            else:
                blocks.append(commands(lines[i + 1 : end], first_line=i + 2))
            i = end
        i += 1
    return blocks, skipped


def commands(lines: list[str], first_line: int) -> list[Example]:
    """Whole commands: a line ending in `\\`, or inside an open quote, continues on the next."""
    found: list[Example] = []
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(lines, first_line):
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = number
        pending.append(line)
        joined = "\n".join(pending)
        if joined.endswith("\\") or not _complete(joined):
            continue
        found.append(Example(start, joined))
        pending = []
    assert not pending, f"README.md:{start}: unfinished command {pending}"
    return found


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


class Shell:
    """bash in the scratch folder, with `yomitoki` and `python` of this environment first on PATH."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        bin_dir = folder / ".bin"
        bin_dir.mkdir()
        (bin_dir / "yomitoki").write_text(f'#!/bin/sh\nexec {sys.executable} -m server "$@"\n')
        (bin_dir / "yomitoki").chmod(0o755)
        (bin_dir / "python").symlink_to(sys.executable)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None

    def localize(self, command: str) -> str:
        return command.replace(DEFAULT_URL, f"127.0.0.1:{self.port}").replace("--port 8000", f"--port {self.port}")

    def run(self, example: Example) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-o", "pipefail", "-c", self.localize(example.command)], cwd=self.folder,
                              env=self.env, capture_output=True, text=True, timeout=600)

    def serve(self, example: Example) -> None:
        assert self.server is None, f"README.md:{example.line}: a second server in the run blocks"
        log = (self.folder / "server.log").open("wb")
        self.server = subprocess.Popen(["bash", "-c", "exec " + self.localize(example.command)], cwd=self.folder,
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.server.poll() is None, f"README.md:{example.line}: the server exited:\n{self.log()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"README.md:{example.line}: the server was not healthy within 300 s:\n{self.log()}")

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()


def error_in(output: str) -> str | None:
    """An error answer in curl's output: a JSON error body or a server-sent `error` event."""
    if re.search(r"^event: error$", output, re.M):
        return "an `error` event"
    try:
        body = json.loads(output)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("status_code"), int) and body["status_code"] >= 400:
        return f"status {body['status_code']}"
    return None


def test_readme_blocks_are_found_and_marked() -> None:
    blocks, skipped = shell_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 8 and skipped, (len(blocks), skipped)
    every = [example.command for block in blocks for example in block]
    assert any(c.startswith("curl") for c in every) and any(c.startswith("yomitoki serve") for c in every)
    assert any("-d '{\n" in c for c in every)  # a JSON body over several lines is one command


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_examples_work_as_typed(tmp_path: Path) -> None:
    blocks, _ = shell_blocks(README.read_text(encoding="utf-8"))
    shutil.copytree(CORPUS, tmp_path / "corpus")
    shell = Shell(tmp_path)
    waiting: list[Example] = []  # the quick start's curl examples come before the serve line that answers them
    try:
        for example in (example for block in blocks for example in block):
            assert example.command.startswith(("curl", "yomitoki")), (
                f"README.md:{example.line}: only curl and yomitoki commands run here; mark the block "
                f"`<!-- readme-test: skip (why) -->` if it cannot run: {example.command}")
            if example.command.startswith("yomitoki serve"):
                shell.serve(example)
                for earlier in waiting:
                    check(shell, earlier)
                waiting.clear()
            elif example.command.startswith("curl") and shell.server is None:
                waiting.append(example)
            else:
                check(shell, example)
        assert not waiting, f"no `yomitoki serve` line to answer {waiting}"
    finally:
        shell.stop()


def check(shell: Shell, example: Example) -> None:
    done = shell.run(example)
    where = f"README.md:{example.line}: {example.command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, f"exit {done.returncode} from {where}"
    problem = error_in(done.stdout)
    assert problem is None, f"{problem} from {where}\nserver log:\n{shell.log()}"
