"""The Python files of a snapshot as modules: their dotted names, source roots and ranking.

A file is a candidate for a name when its module matches, in three tiers (best first): exactly
from the repository root, from a source root (`src/`, `lib/`, `python/`, a folder named like
the repository unless it is itself a package), or as a suffix. Within a tier, non-test code wins
over test code, `.py` over `.pyi`, then the shortest path.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.locate.names import normalize

SOURCE_ROOTS = frozenset({"src", "lib", "python"})
# Folders and files that hold tests, compared in lower case.
_TEST_DIRS = frozenset({"test", "tests", "testing", "unittests", "unit_tests"})
# Candidate tiers, best first.
EXACT, SOURCE_ROOT, SUFFIX = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    # Module name from the repository root, and from its source root when it has one.
    module: tuple[str, ...]
    root_module: tuple[str, ...] | None
    # (test code, stub, folders, characters, path): smaller is preferred.
    rank: tuple[int, int, int, int, str]

    @property
    def display_module(self) -> tuple[str, ...]:
        return self.root_module if self.root_module is not None else self.module


def _is_test_path(folders: list[str], filename: str) -> bool:
    for folder in folders:
        lowered = folder.lower()
        if lowered in _TEST_DIRS or lowered.startswith("test_") or lowered.endswith(("_test", "_tests")):
            return True
    lowered = filename.lower()
    return (
        lowered.startswith("test_")
        or lowered.endswith(("_test.py", "_tests.py"))
        or lowered
        in {
            "conftest.py",
            "test.py",
            "tests.py",
        }
    )


def repo_folder_name(repo: str) -> str:
    name = repo.rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".git")
    return name.lower().replace("-", "_")


def describe_file(path: str, repo_folder: str, packages: set[str]) -> SourceFile | None:
    if path.endswith(".py"):
        stem, stub = path[:-3], 0
    elif path.endswith(".pyi"):
        stem, stub = path[:-4], 1
    else:
        return None
    # A dot in a folder or file name (`config-3.11/`, `setup.cfg.py`) reads as a dot in the
    # dotted name, which is how anyone would type it.
    parts = [normalize(p) for folder in stem.split("/") for p in folder.split(".") if p]
    if not parts:
        return None
    folders = parts[:-1]
    module = tuple(parts[:-1]) if parts[-1] == "__init__" else tuple(parts)
    root_module: tuple[str, ...] | None = None
    if len(module) > 1:
        first = module[0].lower()
        # A root folder that is itself a package (`litestar/__init__.py` in the litestar repo)
        # is part of the importable name, not a place that holds packages.
        is_root = first in SOURCE_ROOTS or first.replace("-", "_") == repo_folder
        if is_root and module[0] not in packages:
            root_module = module[1:]
    rank = (int(_is_test_path(folders, path.rsplit("/", 1)[-1])), stub, len(folders), len(path), path)
    return SourceFile(path=path, module=module, root_module=root_module, rank=rank)


def is_package(file: SourceFile) -> bool:
    return file.path.endswith(("/__init__.py", "/__init__.pyi")) or file.path in {
        "__init__.py",
        "__init__.pyi",
    }


def unique(files: list[SourceFile]) -> list[SourceFile]:
    seen: set[str] = set()
    unique = []
    for file in files:
        if file.path not in seen:
            seen.add(file.path)
            unique.append(file)
    return unique


@dataclass(frozen=True, slots=True)
class Candidate:
    tier: int
    file: SourceFile
    # How many leading parts of the name are the module part.
    module_parts: int

    @property
    def key(self) -> tuple[int, tuple[int, int, int, int, str], int]:
        return (self.tier, self.file.rank, -self.module_parts)
