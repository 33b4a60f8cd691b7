"""The repository documents itself: its contract is docs/contract.md, and every file it
names is one the repository has.

- No file names the contract by any other name than docs/contract.md.
- No file names a path outside the repository: a `../` that climbs out of it, an
  absolute path into the directories that hold it, a Markdown file or link target the
  repository does not have.
- Every citation `docs/contract.md, "<section>"` (in code, tests, benchmarks and docs)
  names a heading of docs/contract.md.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()
"""Left out of the scans: it spells out the names it looks for."""

NOT_THE_REPOSITORY = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "bench-results"}
SHARED_ROOTS = {"/", "/tmp", "/home", "/Users", "/usr", "/var", "/opt", "/srv", "/mnt"}
"""Ancestors of the repository too common to mean "outside the repository" when named."""

# The sections other files cite; a docstring may cite any heading, these must exist.
SECTIONS = (
    "Message envelope",
    "Topics and types",
    "Command payloads",
    "Event payloads",
    "The saga",
    "What a failure undoes",
    "Compensations",
    "No orphan resources",
    "HTTP API",
    "HTTP fallback transport",
    "Transport per participant",
    "The platform's services",
)

URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
MARKDOWN_NAME = re.compile(r"(?<![\w./-])((?:\.{1,2}/)*[\w.-]*\w(?:/[\w.-]*\w)*\.md)\b")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
CLIMBING = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-]+(?:/[\w.-]+)*)")
ABSOLUTE = re.compile(r"(?<![\w.:/-])(/[\w.-]+(?:/[\w.-]+)+)")
CITATION = re.compile(r'docs/contract\.md,?\s+((?:"[^"\n]{1,100}"(?:\s*(?:,|and|or)\s*)?)+)')
CONTINUATION = re.compile(r"\n[ \t]*(?:#[ \t]*)?")


def repository_files() -> list[str]:
    """Every file of the working tree that git would track (tracked, or new and not ignored),
    as POSIX paths relative to the root; a plain walk when git is not at hand."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})
    except (OSError, subprocess.CalledProcessError):
        found = []
        for directory, subdirectories, names in os.walk(ROOT):
            subdirectories[:] = [
                d for d in subdirectories if d not in NOT_THE_REPOSITORY and not d.endswith(".egg-info")
            ]
            found += [(Path(directory) / name).relative_to(ROOT).as_posix() for name in names]
        return sorted(found)


FILES = repository_files()
FILE_SET = frozenset(FILES)


def text_files() -> Iterator[tuple[str, str]]:
    for name in FILES:
        if name == THIS_FILE:
            continue
        raw = (ROOT / name).read_bytes()
        if b"\0" in raw:
            continue
        try:
            yield name, raw.decode("utf-8")
        except UnicodeDecodeError:
            continue


def resolves(name: str, target: str, files: frozenset[str] = FILE_SET) -> bool:
    """Whether `target`, named in file `name`, is a file of the repository: read from the
    naming file's directory, or from the root."""
    return any(_normal(base / target) in files for base in (PurePosixPath(name).parent, PurePosixPath(".")))


def _normal(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return "../"  # climbs out of the repository
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def outside_references(name: str, text: str, files: frozenset[str] = FILE_SET, root: Path = ROOT) -> list[str]:
    """What `text` (the content of file `name`) names outside the repository."""
    problems = []
    if "CONTRACT" + ".md" in text:
        problems.append("names CONTRACT" + ".md; the project's contract is docs/contract.md")
    text = URL.sub(" ", text)
    for target in MARKDOWN_NAME.findall(text):
        if not target.endswith("CONTRACT" + ".md") and not resolves(name, target, files):
            problems.append(f"names {target}, which the repository does not have")
    if name.endswith(".md"):
        for target in MARKDOWN_LINK.findall(text):
            if not resolves(name, target, files):
                problems.append(f"links to {target}, which the repository does not have")
    for target in CLIMBING.findall(text):
        climbed = _normal(PurePosixPath(name).parent / target)
        if climbed.startswith("../"):
            problems.append(f"names {target}, outside the repository")
        elif climbed not in files and not any(file.startswith(climbed + "/") for file in files):
            problems.append(f"names {target}, which the repository does not have")
    ancestors = [str(parent) for parent in root.parents if str(parent) not in SHARED_ROOTS]
    for target in ABSOLUTE.findall(text):
        if any(target.startswith(ancestor + "/") for ancestor in ancestors):
            problems.append(f"names {target}, outside the repository")
    return problems


def headings(markdown: str) -> set[str]:
    return {line.lstrip("#").strip() for line in markdown.splitlines() if re.match(r"#{1,6} ", line)}


def cited_sections(text: str) -> list[str]:
    """The section names `text` cites as `docs/contract.md, "<section>"` (several may follow,
    joined by `and`), read across line breaks and comment continuations."""
    flat = CONTINUATION.sub(" ", text)
    return [name for group in CITATION.findall(flat) for name in re.findall(r'"([^"]+)"', group)]


# ---------------------------------------------------------------- the repository


def test_the_repository_has_its_contract_with_every_section_the_code_relies_on() -> None:
    assert CONTRACT.is_file()
    assert set(SECTIONS) <= headings(CONTRACT.read_text(encoding="utf-8"))


def test_no_file_names_the_shared_contract_or_a_path_outside_the_repository() -> None:
    problems = [f"{name}: {problem}" for name, text in text_files() for problem in outside_references(name, text)]
    assert not problems, "\n".join(problems)


def test_every_contract_section_cited_exists() -> None:
    sections = headings(CONTRACT.read_text(encoding="utf-8"))
    cited = {
        (name, section)
        for name, text in text_files()
        if name.endswith((".py", ".md"))
        for section in cited_sections(text)
    }
    assert {name for name, _ in cited if name.startswith("src/")}, "src/ cites no section of docs/contract.md"
    assert sorted((name, section) for name, section in cited if section not in sections) == []


# ------------------------------------------------------ the checks catch what they look for

FILES_FOR_EXAMPLES = frozenset({"README.md", "docs/contract.md", "docs/kafka.md", "src/saga/domain/saga.py"})


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("src/saga/domain/saga.py", "(CONTRACT" + ".md, the compensation table)"),
        ("src/saga/adapters/platform_participants.py", "`PARTICIPANTS.md` records how they answer"),
        ("README.md", "see [the contract](../shared/contract.md)"),
        ("README.md", "see [Kafka](docs/kafka-notes.md)"),
        ("tests/unit/test_x.py", "read ../../../shared/seed/notes.txt first"),
        ("tests/unit/test_x.py", "as ../shared/notes.txt says"),
        ("tests/unit/test_x.py", "as /work/shared/INFRA.txt says"),
    ],
)
def test_a_reference_outside_the_repository_is_caught(name: str, text: str) -> None:
    assert outside_references(name, text, FILES_FOR_EXAMPLES, Path("/work/wt/saga")) != []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("src/saga/domain/saga.py", '(docs/contract.md, "Compensations")'),
        ("docs/contract.md", "[kafka.md](kafka.md) says when"),
        ("README.md", "[docs/kafka.md](docs/kafka.md), [the API](#http-api), https://example.org/x/CHANGES.md"),
        ("tests/unit/test_x.py", 'Path("/tmp/x.db"), "/proc/stat", "/api/sagas/{id}/retry", "../../docs/kafka.md"'),
    ],
)
def test_a_reference_inside_the_repository_passes(name: str, text: str) -> None:
    assert outside_references(name, text, FILES_FOR_EXAMPLES, Path("/work/wt/saga")) == []


def test_citations_are_read_across_lines_and_comments() -> None:
    text = '''
    """Undo work (docs/contract.md, "Compensations" and "No orphan resources") runs.
    What every transport must do (docs/contract.md, "HTTP fallback
    transport")."""
    # A retry (docs/contract.md, "HTTP
    # API", retry) and the table (docs/contract.md, the compensation table).
    '''
    assert cited_sections(text) == ["Compensations", "No orphan resources", "HTTP fallback transport", "HTTP API"]
