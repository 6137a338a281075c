"""What `docker build .` sends as the build context: the files a clone has, less `.dockerignore`.

The matcher follows moby/patternmatcher, which both the classic builder and BuildKit use:
patterns are cleaned paths, `*` and `?` stay inside one path segment, `**` spans any number of
segments, `!` re-includes, the last matching pattern wins, and a pattern that matches a parent
folder matches everything below it.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _translate(pattern: str) -> re.Pattern[str]:
    out = "^"
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if pattern[index + 1 : index + 2] == "*":
                index += 2
                if pattern[index : index + 1] == "/":
                    index += 1
                out += ".*" if index >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out += re.escape(pattern[index])
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                raise ValueError(f"unclosed '[' in .dockerignore pattern {pattern!r}")
            out += pattern[index : end + 1]
            index = end
        else:
            out += re.escape(char)
        index += 1
    return re.compile(out + "$")


def read_patterns(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file, in order."""
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            continue
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(Pattern(line, exclusion, _translate(line)))
    return patterns


def is_excluded(path: str, patterns: list[Pattern]) -> bool:
    """True when the context leaves `path` (relative, forward slashes) out."""
    path = posixpath.normpath(path)
    parents = path.split("/")[:-1]
    candidates = [path] + ["/".join(parents[: i + 1]) for i in range(len(parents))]
    matched = False
    for pattern in patterns:
        if any(pattern.regex.match(candidate) for candidate in candidates):
            matched = not pattern.exclusion
    return matched


@dataclass(frozen=True)
class BuildContext:
    root: Path
    files: frozenset[str]

    @classmethod
    def of(cls, root: Path) -> BuildContext:
        """The files git would give a clone (plus new, not ignored ones), less .dockerignore."""
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        ignore = root / ".dockerignore"
        patterns = read_patterns(ignore.read_text()) if ignore.exists() else []
        files = {
            name
            for name in listed.split("\0")
            if name and (root / name).exists() and not is_excluded(name, patterns)
        }
        return cls(root, frozenset(files))

    def matches(self, source: str) -> list[str]:
        """Context files a COPY source names: the file itself, or everything below a folder/glob."""
        source = posixpath.normpath(source.lstrip("/")) if source not in {".", "./"} else "."
        if source == ".":
            return sorted(self.files)
        glob = _translate(source) if any(char in source for char in "*?[") else None
        found = [
            name
            for name in self.files
            if name == source
            or name.startswith(source + "/")
            or (glob is not None and any(glob.match(path) for path in [name, *_parents(name)]))
        ]
        return sorted(found)


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
