"""The house holds together as ARCHITECTURE.md draws it: rooms import only the rooms below
them, with no circle; all SQL is in storage/; no module outgrows one job; and no tracked file
names a path of the machine it was written on (a clone anywhere else must work)."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memory_store"
MAX_LINES = 400

# Who may import whom, by room (the first name under memory_store). The shared words import
# only each other; every room may import them. The faces and the wiring may import anything.
SHARED = {"clock", "config", "domain", "errors", "item_schemas", "logging", "pending", "schemas"}
ALLOWED: dict[str, set[str]] = {
    "policy": set(),
    "recall": set(),
    "storage": set(),
    "keys": {"storage"},
    "trail": {"storage", "keys"},
    "services": {"policy", "recall", "storage", "keys", "trail"},
    "api": {"services"},
    "client": set(),
    "integrations": {"client"},
}
FACES = {
    "__init__",
    "__main__",
    "app",
    "cli",
    "cli_arguments",
    "cli_commands",
    "cli_output",
    "mcp_http",
    "mcp_server",
    "mcp_stdio",
    "runtime",
}
# SQL, as this code base writes it (upper-case keywords) at the start of a string literal.
SQL = re.compile(
    r"^\s*(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|PRAGMA|BEGIN|"
    r"CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|SAVEPOINT)\b",
    re.DOTALL,
)
DATABASE_DRIVERS = {"sqlite3", "psycopg", "sqlmodel", "alembic"}


def modules(top: Path) -> Iterator[Path]:
    for path in sorted(top.rglob("*.py")):
        if "migrations" not in path.relative_to(top).parts:
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (TYPE_CHECKING blocks too),
    resolved to the module (`from a.b import c` names a.b.c when c is a module)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT / candidate.replace(".", "/") / "__init__.py"
                ).exists():
                    found.add(candidate)
    return found


def graph() -> dict[str, set[str]]:
    names = {module_name(path): path for top in (PACKAGE, ROOT / "audit") for path in modules(top)}
    return {
        name: {other for other in imports(path) if other in names and other != name}
        for name, path in names.items()
    }


def room(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_circle() -> None:
    edges = graph()
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_rooms_import_only_the_rooms_below_them() -> None:
    wrong = []
    for name, targets in graph().items():
        if name.startswith("audit"):
            wrong += [(name, t) for t in targets if t.startswith("memory_store")]
            continue
        here = room(name)
        if here in FACES:
            continue
        allowed = SHARED | ALLOWED.get(here, set()) | {here}
        if here in SHARED:
            allowed = SHARED
        wrong += [
            (name, target)
            for target in targets
            if target.startswith("memory_store.") and room(target) not in allowed
        ]
    assert wrong == []


def test_the_layering_rules_are_checked_for_every_room() -> None:
    rooms = {
        path.name if path.is_dir() else path.stem
        for path in PACKAGE.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists()) or path.suffix == ".py"
    }
    assert rooms <= SHARED | FACES | set(ALLOWED), "a new room needs a line in ALLOWED"


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in modules(PACKAGE)
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_sql_and_no_database_driver_outside_storage() -> None:
    found = []
    for path in modules(PACKAGE):
        if "storage" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.match(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for imported in names:
                    if imported.split(".")[0] in DATABASE_DRIVERS:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {imported}")
                    if imported.split(".")[0] == "sqlalchemy" and (
                        isinstance(node, ast.Import)
                        or any(alias.name != "Engine" for alias in node.names)
                    ):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {imported}")
    assert found == []


def test_the_sql_detector_sees_sql() -> None:
    """The check above would pass on anything if its pattern matched nothing."""
    assert SQL.match("SELECT id FROM memories WHERE user_id = ?")
    assert SQL.match("  DELETE FROM api_tokens WHERE id = ?")
    assert SQL.match("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not SQL.match("Select a category from the catalogue")
    assert not SQL.match("memory.update")


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no tracked files to read")
    return [ROOT / name for name in listed.split("\0") if name]


# A home folder or this workplace's folder, as an absolute path (root, home, Users, work).
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:root|home|Users|work)/[\w.-]+")


def test_no_tracked_file_names_a_path_of_this_machine() -> None:
    here = str(ROOT)
    found = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        for number, line in enumerate(text.splitlines(), 1):
            if here in line or MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert found == []


def test_the_machine_path_detector_sees_machine_paths() -> None:
    # Built, not written out: this file must not hold a machine's path itself.
    assert MACHINE_PATH.search('CONSOLE_SCRIPT = Path("' + "/work" + '/main/.venv/bin/x")')
    assert MACHINE_PATH.search("cd " + "/home" + "/alice/memory-store")
    assert not MACHINE_PATH.search("/usr/lib/postgresql/15/bin")
    assert not MACHINE_PATH.search("see notes/work/today and var/root.db")


def test_documents_name_only_files_the_repository_has() -> None:
    """A reader following a "see ..." to a Markdown file finds it: every one a tracked file names is
    tracked (by its name, wherever it is)."""
    tracked = {path.relative_to(ROOT).as_posix() for path in tracked_files()}
    names = {Path(path).name for path in tracked}
    missing = []
    for path in tracked_files():
        if path.suffix not in {".md", ".py", ".toml", ".html", ".js"} or not path.is_file():
            continue
        for named in re.findall(r"[\w./-]*\b[A-Za-z][\w-]*\.md\b", path.read_text()):
            if Path(named).name not in names:
                missing.append(f"{path.relative_to(ROOT)}: {named}")
    assert missing == []
