"""The markdown a reader follows: every relative link resolves, and the README stays a front door.

The README is the first thing a new user reads and runs, so its shape is checked like code: at most 220 lines, no
heading twice, `make demo` and `make test` as its first commands, and only commands that a test (or `make demo` /
`make test` themselves) runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 220
PAGES = {
    "README.md",
    "bench/README.md",
    "contracts/README.md",
    "docs/auth.md",
    "docs/chain.md",
    "docs/coordinator.md",
    "docs/discovery.md",
    "docs/miner.md",
    "docs/orchestrator.md",
    "docs/provisioning.md",
    "docs/security.md",
    "docs/validator.md",
    "services/images/README.md",
}

# Each command the README shows, by how its line starts, and what runs it. A command added to the README needs a
# test that runs it, named here.
README_COMMANDS = {
    "make demo": "tests/e2e/test_demo.py runs its two commands (devnet up, devnet demo); make test runs it all",
    "make test": ".ci/run",
    "primenet devnet up": "tests/e2e/test_demo.py",
    "primenet devnet demo": "tests/e2e/test_demo.py",
    "primenet devnet status": "tests/e2e/test_demo.py",
    "primenet devnet restart": "tests/e2e/test_demo.py (orchestrator --kill, miner)",
    "primenet devnet down": "tests/e2e/test_demo.py (what make down runs)",
    "export PRIMENET_ADMIN_TOKEN=$(cat .devnet/admin.token)": "tests/e2e/test_demo.py reads the same file",
    "primenet nodes ls": "tests/e2e/test_demo.py",
    "primenet tasks ls": "tests/e2e/test_demo.py",
    "primenet tasks rm": "tests/e2e/test_demo.py",
    "primenet tasks create": "tests/e2e/test_demo.py",
    "primenet tasks show": "tests/e2e/test_demo.py, tests/integration/test_pool_cli.py",
    "primenet logs": "tests/e2e/test_demo.py",
    "ansible-playbook -i inventories/<env> playbooks/site.yml": "playbooks/molecule/default (make test)",
    "make images": "tests/images.py runs scripts/build-images.sh for test_images.py and test_coordinator_stack.py",
    # The Pulumi CLI cannot run on our machines: the test realises the program these commands run, under Pulumi's
    # mocks on the local dockerd, with the dev stack's settings and the two secrets.
    "cd infra/coordinator": "tests/integration/test_coordinator_stack.py runs infra/coordinator/__main__.py",
    "pulumi stack init dev": "tests/integration/test_coordinator_stack.py (the dev stack's settings)",
    "pulumi config set --secret": "tests/integration/test_coordinator_stack.py (secret_keys)",
    "pulumi up": "tests/integration/test_coordinator_stack.py realises the program on dockerd",
    "pulumi stack output --json deployment": "tests/integration/test_coordinator_stack.py gives it to the miner",
    "pulumi destroy": "tests/integration/test_coordinator_stack.py (DockerRealiser.destroy, then nothing is left)",
}

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class CodeBlock:
    language: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Markdown:
    path: Path
    prose: str  # the text outside fenced code blocks (those lines left empty, so line numbers hold)
    headings: tuple[str, ...]
    blocks: tuple[CodeBlock, ...]

    @property
    def name(self) -> str:
        return self.path.relative_to(REPO).as_posix()


@cache
def read(path: Path) -> Markdown:
    prose: list[str] = []
    headings: list[str] = []
    blocks: list[CodeBlock] = []
    fence: tuple[str, str] | None = None  # (marker, language) while inside a fenced block
    body: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence, body = (opened.group(1), opened.group(2)), []
            prose.append("")
        elif fence is not None:
            if line.strip().startswith(fence[0]):
                blocks.append(CodeBlock(fence[1], tuple(body)))
                fence = None
            else:
                body.append(line)
            prose.append("")
        else:
            prose.append(line)
            heading = _HEADING.match(line)
            if heading:
                headings.append(heading.group(2))
    return Markdown(path, "\n".join(prose), tuple(headings), tuple(blocks))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link markup and punctuation dropped, lower case, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Markdown) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in page.headings:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@cache
def markdown_files() -> tuple[Path, ...]:
    """The repository's markdown: tracked files, and new ones git does not ignore (a checkout before the commit)."""
    git = shutil.which("git")
    assert git is not None, "git lists the repository's markdown files; install it"
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return tuple(sorted({REPO / name for name in listed if (REPO / name).is_file()}))


def broken_links(page: Markdown) -> list[str]:
    """`line: target (why)` for each relative link of `page` that does not lead to a file or heading."""
    problems = []
    text = _CODE_SPAN.sub(lambda span: " " * len(span.group()), page.prose)  # a link in `code` is not a link
    for match in _LINK.finditer(text):
        target = match.group(1)
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # a URL: not checked offline
        line = text.count("\n", 0, match.start()) + 1
        where, _, fragment = target.partition("#")
        target_page = page
        if where:
            base = REPO if where.startswith("/") else page.path.parent
            resolved = (base / unquote(where.lstrip("/"))).resolve()
            if not resolved.is_relative_to(REPO):
                problems.append(f"{line}: {target} (outside the repository)")
                continue
            if not resolved.exists():
                problems.append(f"{line}: {target} (no such file)")
                continue
            if resolved.suffix != ".md":
                continue  # a file or folder: no headings to check
            target_page = read(resolved)
        if fragment and unquote(fragment) not in anchors(target_page):
            problems.append(f"{line}: {target} (no heading with this anchor in {target_page.path.name})")
    return problems


def readme_commands() -> list[str]:
    """The command lines of the README's shell blocks, comments and blank lines left out."""
    page = read(REPO / "README.md")
    commands = []
    for block in page.blocks:
        if block.language in ("", "bash", "sh", "shell", "console"):
            commands += [line.split(" #")[0].strip() for line in block.lines if line.strip()]
    return [command for command in commands if command and not command.startswith("#")]


def test_the_pages_are_there() -> None:
    names = {path.relative_to(REPO).as_posix() for path in markdown_files()}
    assert names >= PAGES, f"missing: {sorted(PAGES - names)}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    problems = broken_links(read(path))
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


def test_no_heading_twice_in_the_readme() -> None:
    headings = [heading.lower() for heading in read(REPO / "README.md").headings]
    assert sorted({h for h in headings if headings.count(h) > 1}) == []


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    first = read(REPO / "README.md").blocks[0]
    commands = [line.split("#")[0].strip() for line in first.lines if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def test_every_readme_command_is_run_by_a_test() -> None:
    untested = [c for c in readme_commands() if not any(c.startswith(known) for known in README_COMMANDS)]
    assert untested == [], "README commands that no test runs (add the test, then name it in README_COMMANDS)"


def test_the_link_check_finds_what_is_broken() -> None:
    """The checker itself: a missing file, a missing anchor and a link that leaves the repository are caught."""
    page = Markdown(
        REPO / "docs" / "example.md",
        "[ok](auth.md#refusals) [gone](nowhere.md) [bad](auth.md#no-such-heading)\n"
        "`[code](not-a-link.md)` [out](../../etc/passwd) [web](https://example.org/x.md) [self](#top)",
        ("Top",),
        (),
    )
    assert broken_links(page) == [
        "1: nowhere.md (no such file)",
        "1: auth.md#no-such-heading (no heading with this anchor in auth.md)",
        "2: ../../etc/passwd (outside the repository)",
    ]
