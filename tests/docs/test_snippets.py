"""Every Python code block of README.md and docs/*.md, executed: the docs are their own test.

Each ```` ```python ```` block runs on its own (a fresh namespace, as a reader would paste it),
from the repository root, so the relative paths the docs name (``examples/config/rl.yaml``)
resolve. A block may ``await`` at top level (it is run in an event loop of its own).

Blocks that talk to a server (they name an address on port 8081: ``127.0.0.1:8081``,
``10.0.0.1:8081``) get real ``ratekeeper serve`` processes on free loopback ports serving the
examples' policies: each distinct address in a block is replaced by the next server's, so no
traffic leaves this machine, and a block that closes its limiters must have reported to them. A
limiter a block leaves open (an app's, made at import) is closed after it.

A block that cannot run here is marked on the line before it::

    <!-- snippet: skip (the reason) -->

A marker must give its reason and be followed by a Python block; such blocks stay few.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

import ratekeeper
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_SKIP = re.compile(r"^\s*<!--\s*snippet:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
_MARKER = re.compile(r"<!--\s*snippet:")
#: A server address as the docs write one: ``host:8081`` inside a string literal.
_ADDRESS = re.compile(r"""(?<=["'])[\w.-]+:8081(?=["'])""")
#: How many servers the fixture starts: the most distinct addresses one block names.
SERVERS = 2
#: Blocks marked not runnable, at most: the point is that the docs run.
MAX_SKIPPED = 3


@dataclass(frozen=True, slots=True)
class Snippet:
    """One Python block of a Markdown file."""

    #: The file, relative to the repository root.
    file: str
    #: The line of the opening fence (1-based).
    line: int
    #: The block's code, its fence's indentation removed.
    code: str
    #: Why it is not run (``None``: it is).
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def _blocks(path: Path) -> Iterator[Snippet]:
    """The Python blocks of ``path``, each with the skip marker before it, if any."""
    lines = path.read_text().splitlines()
    name = str(path.relative_to(ROOT))
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, language = fence.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        if language == "python":
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = _SKIP.match(before)
            body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
            yield Snippet(name, i + 1, "\n".join(body) + "\n", marker and marker["reason"])
        i = end + 1


SNIPPETS = [snippet for path in DOCS for snippet in _blocks(path)]


def test_the_docs_have_snippets_and_few_are_skipped() -> None:
    assert len(SNIPPETS) >= 8
    skipped = [s.id for s in SNIPPETS if s.skip]
    assert len(skipped) <= MAX_SKIPPED, skipped


def test_every_marker_is_a_skip_with_a_reason_before_a_python_block() -> None:
    marked = {(s.file, s.line) for s in SNIPPETS if s.skip}
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not _MARKER.search(line):
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            assert _SKIP.match(line), f"{where}: write <!-- snippet: skip (reason) -->"
            following = next(n for n in range(number, len(lines)) if lines[n].strip())
            target = (str(path.relative_to(ROOT)), following + 1)
            assert target in marked, f"{where}: the marker is not before a Python block"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RatekeeperServer]]:
    """``SERVERS`` real servers on free ports, serving every policy the examples ship."""
    config = tmp_path_factory.mktemp("snippet-config")
    for policy in [
        *(ROOT / "examples" / "config").glob("*.yaml"),
        ROOT / "examples" / "policies.yaml",
    ]:
        shutil.copy(policy, config / policy.name)
    logs = tmp_path_factory.mktemp("snippet-logs")
    with ExitStack() as stack:
        yield [
            stack.enter_context(ratekeeper_server(config, logs, name=f"server{n}"))
            for n in range(SERVERS)
        ]


def _compiled(snippet: Snippet, servers: list[RatekeeperServer]) -> CodeType:
    """The block's code, its server addresses replaced by the fixture's servers'."""
    named = list(dict.fromkeys(_ADDRESS.findall(snippet.code)))
    assert len(named) <= len(servers), f"{snippet.id} names more servers than the fixture runs"
    targets = dict(zip(named, (s.grpc_target for s in servers), strict=False))
    code = _ADDRESS.sub(lambda m: targets[m.group()], snippet.code)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(code, f"{snippet.id} (a snippet)", "exec", flags=flags, dont_inherit=True)


@pytest.mark.integration
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(
    snippet: Snippet, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if snippet.skip:
        pytest.skip(f"marked in the doc: {snippet.skip}")
    needs_server = _ADDRESS.search(snippet.code) is not None
    running: list[RatekeeperServer] = request.getfixturevalue("servers") if needs_server else []
    code = _compiled(snippet, running)
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "snippet"}
    before = _reports(running)
    result = eval(code, namespace)  # a top-level await makes the block a coroutine
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    left_open = [v for v in namespace.values() if isinstance(v, ratekeeper.Limiter)]
    for limiter in left_open:  # an app's limiter, made at import: closed here, not leaked
        limiter.close()
    if running and not left_open:  # limiters used and closed reported to the servers
        assert _reports(running) > before, f"{snippet.id}: no server received a report"


def _reports(servers: list[RatekeeperServer]) -> float:
    """Report calls the servers answered so far."""
    return sum(s.metric("ratekeeper_call_seconds_count", call="report") for s in servers)
