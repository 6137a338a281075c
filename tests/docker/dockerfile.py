"""A small, strict Dockerfile reader for the static checks (no Docker engine runs here).

It understands what our Dockerfiles use: parser directives, comments, line continuations,
global and stage ARGs, `${VAR}` / `${VAR:-default}` / `${VAR:+word}` substitution, and the exec
(JSON) and shell forms. Anything it does not understand (a heredoc, another escape character, an
unknown instruction) raises `DockerfileError`, so a check can never pass by misreading a file.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTIONS = {
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(\S+)\s*$")
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class DockerfileError(ValueError):
    """The file uses something this reader does not understand, or is malformed."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    raw: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN/COPY..., or None for the shell form."""
        text = self.raw.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise DockerfileError(f"line {self.line}: bad JSON array {text!r}: {error}") from error
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DockerfileError(f"line {self.line}: exec form must be an array of strings: {text!r}")
        return value


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD: flags (`--from`, `--chown`, ...), sources and destination, substituted."""

    keyword: str
    flags: dict[str, str]
    sources: list[str]
    dest: str
    line: int


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    healthcheck: tuple[dict[str, str], list[str]] | None = None
    exposed: list[str] = field(default_factory=list)
    parent: Stage | None = None

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    # What the image built from this stage ends up with, following `FROM <earlier stage>`.
    def effective_env(self) -> dict[str, str]:
        inherited = self.parent.effective_env() if self.parent else {}
        return {**inherited, **self.env}

    def effective_user(self) -> str | None:
        if self.user is not None:
            return self.user
        return self.parent.effective_user() if self.parent else None

    def effective_cmd(self) -> list[str] | None:
        if self.cmd is not None:
            return self.cmd
        return self.parent.effective_cmd() if self.parent else None

    def effective_entrypoint(self) -> list[str] | None:
        if self.entrypoint is not None:
            return self.entrypoint
        return self.parent.effective_entrypoint() if self.parent else None

    def effective_healthcheck(self) -> tuple[dict[str, str], list[str]] | None:
        if self.healthcheck is not None:
            return self.healthcheck
        return self.parent.effective_healthcheck() if self.parent else None

    def lineage(self) -> list[Stage]:
        """This stage and the stages it builds on, the first (built on an image) first."""
        return [*self.parent.lineage(), self] if self.parent else [self]

    def effective_exposed(self) -> list[str]:
        return [port for stage in self.lineage() for port in stage.exposed]

    def effective_runs(self) -> list[str]:
        return [run for stage in self.lineage() for run in stage.runs]

    def effective_copies(self) -> list[Copy]:
        return [copy for stage in self.lineage() for copy in stage.copies]

    def root(self) -> Stage:
        """The stage whose base is an image (not another stage) that this one builds on."""
        return self.parent.root() if self.parent else self


@dataclass
class Dockerfile:
    path: Path
    directives: dict[str, str]
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def substitute(text: str, variables: dict[str, str]) -> str:
    """Docker's `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+word}` (unset reads as empty)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = variables.get(name, "")
        op = match.group("op")
        if op == "-":
            return value or match.group("word")
        if op == "+":
            return match.group("word") if value else ""
        return value

    return _VARIABLE.sub(replace, text.replace("\\$", "\0")).replace("\0", "$")


def logical_lines(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Parser directives, and (first line number, joined text) per instruction."""
    directives: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)
        index += 1
    if directives.get("escape", "\\") != "\\":
        raise DockerfileError("only the default escape character (backslash) is supported")
    result: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(lines[index:], start=index + 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue  # comments are dropped, even between continuation lines
        if not parts:
            if not stripped:
                continue
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        result.append((start, " ".join(part.strip() for part in parts).strip()))
        parts = []
    if parts:
        raise DockerfileError(f"line {start}: the file ends inside a line continuation")
    return directives, result


def _split_flags(words: list[str], line: int) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest = list(words)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)[2:]
        name, _, value = flag.partition("=")
        flags[name] = value if "=" in flag else "true"
    if not rest:
        raise DockerfileError(f"line {line}: nothing after the flags")
    return flags, rest


def parse(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """Read `path` as `docker build --build-arg` would with `build_args`.

    A build argument replaces the default of the ARG that declares it, globally or in a stage.
    Raise DockerfileError on anything this reader does not understand.
    """
    given = dict(build_args or {})
    directives, lines = logical_lines(path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in lines:
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword not in INSTRUCTIONS:
            raise DockerfileError(f"{path.name}:{line}: unknown instruction {keyword!r}")
        if "<<" in rest and keyword in {"RUN", "COPY", "ADD"}:
            raise DockerfileError(f"{path.name}:{line}: heredocs are not supported by this reader")
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            name = name.strip()
            global_args[name] = given.get(name, substitute(_unquote(default), global_args))
            continue
        if keyword == "FROM":
            _, words = _split_flags(rest.split(), line)
            stage_name: str | None = None
            if len(words) == 3 and words[1].upper() == "AS":
                stage_name = words[2]
            elif len(words) != 1:
                raise DockerfileError(f"{path.name}:{line}: cannot read FROM {rest!r}")
            base = substitute(words[0], global_args)
            parent = next((stage for stage in stages if stage.name == base), None)
            stage = Stage(index=len(stages), base=base, name=stage_name, line=line, parent=parent)
            stages.append(stage)  # ARGs never carry into a stage; ENV does, through `parent`
            continue
        if not stages:
            raise DockerfileError(f"{path.name}:{line}: {keyword} before the first FROM")
        stage = stages[-1]
        stage.instructions.append(Instruction(keyword, rest, line))
        variables = {**stage.args, **stage.effective_env()}
        if keyword == "ARG":
            name, eq, default = rest.partition("=")
            name = name.strip()
            if name in given:
                stage.args[name] = given[name]
            elif eq:
                stage.args[name] = substitute(_unquote(default), variables)
            else:  # `ARG NAME` in a stage re-imports the global default
                stage.args[name] = global_args.get(name, "")
        elif keyword == "ENV":
            stage.env.update(_parse_env(rest, variables, line))
        elif keyword in {"COPY", "ADD"}:
            instruction = stage.instructions[-1]
            form = instruction.exec_form()
            if form is None:
                flags, words = _split_flags(rest.split(), line)
            else:
                flags, words = {}, form
            words = [substitute(word, variables) for word in words]
            if len(words) < 2:
                raise DockerfileError(f"{path.name}:{line}: {keyword} needs a source and a destination")
            flags = {key: substitute(value, variables) for key, value in flags.items()}
            stage.copies.append(Copy(keyword, flags, words[:-1], words[-1], line))
        elif keyword == "RUN":
            stage.runs.append(substitute(rest, variables))
        elif keyword == "USER":
            stage.user = substitute(rest, variables)
        elif keyword == "CMD":
            stage.cmd = _command(stage.instructions[-1])
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = _command(stage.instructions[-1])
        elif keyword == "EXPOSE":
            stage.exposed += [substitute(word, variables) for word in rest.split()]
        elif keyword == "HEALTHCHECK":
            stage.healthcheck = _healthcheck(rest, line)
    if not stages:
        raise DockerfileError(f"{path.name}: no FROM")
    names = [stage.name for stage in stages if stage.name]
    if len(names) != len(set(names)):
        raise DockerfileError(f"{path.name}: two stages share a name: {names}")
    return Dockerfile(path=path, directives=directives, global_args=global_args, stages=stages)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_env(rest: str, variables: dict[str, str], line: int) -> dict[str, str]:
    words = shlex.split(rest, posix=True)
    if words and "=" not in words[0]:
        raise DockerfileError(
            f"line {line}: use ENV KEY=value (the legacy `ENV KEY value` form is deprecated)"
        )
    result: dict[str, str] = {}
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise DockerfileError(f"line {line}: ENV item {word!r} has no '='")
        result[name] = substitute(value, {**variables, **result})
    return result


def _command(instruction: Instruction) -> list[str]:
    form = instruction.exec_form()
    if form is None:
        return ["/bin/sh", "-c", instruction.raw]
    return form


def _healthcheck(rest: str, line: int) -> tuple[dict[str, str], list[str]] | None:
    if rest.strip().upper() == "NONE":
        return None
    options: dict[str, str] = {}
    remainder = rest.strip()
    while match := re.match(r"--([a-z-]+)=(\S+)\s+", remainder):
        options[match.group(1)] = match.group(2)
        remainder = remainder[match.end() :]
    keyword, _, command = remainder.partition(" ")
    if keyword.upper() != "CMD":
        raise DockerfileError(f"line {line}: HEALTHCHECK needs CMD: {rest!r}")
    return options, _command(Instruction("CMD", command, line))
