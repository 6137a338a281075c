"""The clean corpus of `bench review_precision`: its functions, and the verdicts on what a review says.

`bench/corpus/clean/` holds modules of mature libraries that pass their authors' own ruff
configuration, one folder per library laid out as its repository (`libraries.toml` names them).
Every function and method of those modules is one `CleanFunction`, named by the dotted name
`POST /analyze/function` takes. `verdicts.toml` says which suggestions are plainly wrong, which
are pedantic (true, but no senior reviewer would write them on this code) and which are fair;
`Verdicts.judge` applies it to one review, and counts as wrong a second suggestion on a concern
the review already raised. See bench/corpus/README.md.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

CLEAN = Path(__file__).resolve().parent / "corpus" / "clean"
LIBRARIES = CLEAN / "libraries.toml"
VERDICTS = CLEAN / "verdicts.toml"
KINDS = ("wrong", "pedantic", "fair")
UNLABELLED = "unlabelled"
# The configuration files ruff reads, in the order it prefers them in one folder.
RUFF_CONFIGS = (".ruff.toml", "ruff.toml", "pyproject.toml")
LICENSES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENSE.rst")
# Source roots the analyzer strips from a dotted name (docs/lookup.md): `src/click/utils.py` is `click.utils`.
_SOURCE_ROOTS = ("src/",)


@dataclass(frozen=True)
class Library:
    """One library folder: served as the GitHub repository `repository` in repository mode."""

    folder: str
    repository: str
    commit: str
    license: str
    modules: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CLEAN / self.folder

    def config(self) -> Path:
        """Its ruff configuration file; FileNotFoundError when the folder has none."""
        for name in RUFF_CONFIGS:
            if (self.path / name).is_file():
                return self.path / name
        raise FileNotFoundError(f"{self.path} has no ruff configuration ({', '.join(RUFF_CONFIGS)})")


@dataclass(frozen=True)
class CleanFunction:
    """A function or method of the corpus: `name` is its dotted name, also its id in verdicts.toml."""

    library: str
    path: str  # in the library folder, as in its repository
    name: str
    line: int


def load_libraries(path: Path = LIBRARIES) -> list[Library]:
    """The libraries of the corpus; ValueError naming the entry when one is malformed."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    libraries = []
    for raw in data["library"]:
        try:
            library = Library(
                folder=raw["folder"],
                repository=raw["repository"],
                commit=raw["commit"],
                license=raw["license"],
                modules=tuple(raw["modules"]),
            )
        except KeyError as exc:
            raise ValueError(f"library {raw.get('folder', '?')!r} lacks {exc}") from None
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", library.repository):
            raise ValueError(f"{library.folder}: repository must be owner/name, not {library.repository!r}")
        libraries.append(library)
    return libraries


def module_name(path: str) -> str:
    """The dotted module of a path: `src/click/utils.py` -> `click.utils`, `attr/__init__.py` -> `attr`."""
    for root in _SOURCE_ROOTS:
        path = path.removeprefix(root)
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def functions_of(library: Library) -> list[CleanFunction]:
    """Every function and method of the library's modules, in source order, one per dotted name.

    Methods of nested classes count; functions defined inside functions do not (they are reviewed
    as part of the function around them). Several definitions of one name (a property's getter
    and setter, `@overload`s) are one function, as the analyzer sends them together.
    Raises SyntaxError when a module does not parse.
    """
    found: dict[str, CleanFunction] = {}
    for path in library.modules:
        source = (library.path / path).read_text(encoding="utf-8")
        tree = ast.parse(source, filename=path)
        module = module_name(path)
        pending: list[tuple[str, ast.AST]] = [("", tree)]
        while pending:
            prefix, node = pending.pop(0)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{module}.{prefix}{child.name}"
                    found.setdefault(name, CleanFunction(library.folder, path, name, child.lineno))
                elif isinstance(child, ast.ClassDef):
                    pending.append((f"{prefix}{child.name}.", child))
                elif isinstance(child, ast.stmt):  # if/try/with at module or class level
                    pending.append((prefix, child))
    return sorted(found.values(), key=lambda f: (f.path, f.line))


def load_functions(libraries: list[Library]) -> list[CleanFunction]:
    return [function for library in libraries for function in functions_of(library)]


@dataclass(frozen=True)
class Verdict:
    """How one kind of suggestion is judged: `kind` is wrong, pedantic or fair."""

    pattern: re.Pattern[str]
    kind: str
    rule: str
    reason: str
    functions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Concern:
    """Suggestions that say the same thing: a review that makes two of them repeats itself."""

    name: str
    patterns: tuple[re.Pattern[str], ...]
    reason: str

    def raised_by(self, suggestion: str) -> bool:
        return any(p.search(suggestion) for p in self.patterns)


@dataclass(frozen=True)
class Judged:
    """One suggestion of one review, judged."""

    function: str
    text: str
    kind: str  # wrong, pedantic, fair or unlabelled
    rule: str
    reason: str
    duplicate_of: str | None = None


class Verdicts:
    """The labels of verdicts.toml, applied to reviews."""

    def __init__(self, verdicts: list[Verdict], concerns: list[Concern]) -> None:
        # A verdict for named functions is tried before the general ones.
        self.verdicts = [v for v in verdicts if v.functions] + [v for v in verdicts if not v.functions]
        self.concerns = concerns

    @classmethod
    def load(cls, path: Path = VERDICTS) -> Verdicts:
        """verdicts.toml; ValueError naming the entry when a pattern does not compile, a kind is
        unknown, or a reason or rule is missing."""
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        verdicts = []
        for number, raw in enumerate(data.get("verdict", []), 1):
            where = f"verdict {number} ({raw.get('pattern', '?')!r})"
            kind = raw.get("verdict")
            if kind not in KINDS:
                raise ValueError(f"{where}: verdict must be one of {', '.join(KINDS)}, not {kind!r}")
            if not raw.get("reason") or not raw.get("rule"):
                raise ValueError(f"{where}: every verdict needs a rule and a one-line reason")
            verdicts.append(
                Verdict(
                    pattern=_compiled(raw.get("pattern", ""), where),
                    kind=kind,
                    rule=raw["rule"],
                    reason=raw["reason"],
                    functions=frozenset(raw.get("functions", [])),
                )
            )
        concerns = []
        for raw in data.get("concern", []):
            where = f"concern {raw.get('name', '?')!r}"
            if not raw.get("name") or not raw.get("reason") or len(raw.get("patterns", [])) < 2:
                raise ValueError(f"{where}: needs a name, a reason and at least two patterns")
            patterns = tuple(_compiled(p, where) for p in raw["patterns"])
            concerns.append(Concern(raw["name"], patterns, raw["reason"]))
        return cls(verdicts, concerns)

    def verdict_for(self, function: str, text: str) -> Verdict | None:
        for verdict in self.verdicts:
            if verdict.functions and function not in verdict.functions:
                continue
            if verdict.pattern.search(text):
                return verdict
        return None

    def judge(self, function: str, suggestions: list[str]) -> list[Judged]:
        """Each suggestion of `function`'s review with its verdict; a suggestion on a concern an
        earlier one of the same review raised is wrong (a duplicate), whatever its own label."""
        judged = []
        raised: dict[str, str] = {}  # concern -> the suggestion that raised it first
        for text in suggestions:
            verdict = self.verdict_for(function, text)
            if verdict is None:
                entry = Judged(function, text, UNLABELLED, "?", "no verdict in verdicts.toml")
            else:
                entry = Judged(function, text, verdict.kind, verdict.rule, verdict.reason)
            for concern in self.concerns:
                if not concern.raised_by(text):
                    continue
                first = raised.setdefault(concern.name, text)
                if first != text:
                    entry = Judged(
                        function,
                        text,
                        "wrong",
                        entry.rule,
                        f"says again what the review said ({concern.name}): {concern.reason}",
                        duplicate_of=first,
                    )
            judged.append(entry)
        return judged


def _compiled(pattern: str, where: str) -> re.Pattern[str]:
    if not pattern:
        raise ValueError(f"{where}: empty pattern")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where}: pattern does not compile: {exc}") from None
