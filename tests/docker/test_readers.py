"""The readers the static checks stand on: if they misread, the checks would prove nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docker.context import BuildContext, is_excluded, read_patterns
from tests.docker.dockerfile import DockerfileError, parse, substitute
from tests.docker.project import ROOT, environment, interpolate


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*\n!src/", "src/a/b.py", False),
        ("*\n!src/", "README.md", True),
        ("*\n!src/", "srcx/a.py", True),
        ("*.md", "docs/a.md", False),  # `*` stays in the top folder
        ("**/*.md", "docs/a.md", True),
        ("**/*.md", "a.md", True),
        ("docs", "docs/deep/a.md", True),  # a folder's pattern covers everything below it
        ("/docs", "docs/a.md", True),
        ("docs/*\n!docs/keep.md", "docs/keep.md", False),
        ("!docs/keep.md\ndocs/*", "docs/keep.md", True),  # the last matching pattern wins
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("**/__pycache__", "pkg/sub/__pycache__/m.pyc", True),
        ("**/*.py[cod]", "pkg/m.pyc", True),
        ("# a comment\n\n  tmp  ", "tmp/x", True),
    ],
)
def test_dockerignore_matching_follows_docker(patterns: str, path: str, excluded: bool) -> None:
    assert is_excluded(path, read_patterns(patterns)) is excluded


def test_our_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = read_patterns((ROOT / ".dockerignore").read_text())
    for path in (
        ".env",
        "analyzer/.env",
        ".git/config",
        ".venv/bin/python",
        ".tools/poetry/bin/poetry",
        ".stack/nats/x",
        "tests/conftest.py",
        "analyzer/__pycache__/app.cpython-311.pyc",
        "docker-compose.yml",
        "docker/Dockerfile",
        "README.md",
    ):
        assert is_excluded(path, patterns), f"{path} would be sent to the builder"
    for path in ("pyproject.toml", "poetry.lock", "analyzer/app.py", "jobs_contract/messages.py"):
        assert not is_excluded(path, patterns), f"{path} is needed by an image"


def test_the_build_context_is_small() -> None:
    files = BuildContext.of(ROOT).files
    assert "poetry.lock" in files
    outside = sorted(
        name
        for name in files
        if name.split("/")[0]
        not in {
            "pyproject.toml",
            "poetry.lock",
            "jobs_contract",
            "review_contract",
            "servicekit",
            "model_host",
            "gateway",
            "fetcher",
            "analyzer",
        }
    )
    assert outside == ["docker/healthcheck.py"]


def test_context_matches_folders_files_and_globs() -> None:
    context = BuildContext(ROOT, frozenset({"a/b.py", "a/c/d.py", "e.txt"}))
    assert context.matches("a/") == ["a/b.py", "a/c/d.py"]
    assert context.matches("e.txt") == ["e.txt"]
    assert context.matches("a/*.py") == ["a/b.py"]
    assert context.matches("missing/") == []


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_dockerfile_reader_joins_lines_and_substitutes(tmp_path: Path) -> None:
    image = parse(
        write(
            tmp_path,
            "# syntax=docker/dockerfile:1\n"
            "ARG BASE=python:3.11-slim\n"
            "FROM ${BASE} AS builder\n"
            "ARG V=1.0\n"
            "# a comment between continuation lines is dropped\n"
            'RUN pip install "tool==${V}" \\\n'
            "    # inside\n"
            "    && echo done\n"
            "FROM builder AS next\n"
            "ENV A=1 \\\n    B=${A}2\n"
            "FROM ${BASE}\n"
            "COPY --from=builder /opt/x /opt/x\n"
            'CMD ["python", "-m", "pkg"]\n'
            "HEALTHCHECK --interval=5s --retries=3 CMD python -c 'print(1)'\n",
        )
    )
    assert image.directives == {"syntax": "docker/dockerfile:1"}
    assert [stage.name for stage in image.stages] == ["builder", "next", None]
    assert image.stages[0].runs == ['pip install "tool==1.0" && echo done']
    assert image.stages[1].parent is image.stages[0]
    assert image.stages[1].effective_env() == {"A": "1", "B": "12"}
    assert image.final.base == "python:3.11-slim"
    assert image.final.copies[0].flags == {"from": "builder"}
    assert image.final.cmd == ["python", "-m", "pkg"]
    assert image.final.healthcheck == (
        {"interval": "5s", "retries": "3"},
        ["/bin/sh", "-c", "python -c 'print(1)'"],
    )


def test_build_arguments_replace_the_defaults_of_the_args_that_declare_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ARG BASE=python:3.11-slim\n"
        "ARG SERVICE\n"
        "ARG MODEL=small\n"
        "FROM ${BASE} AS one\n"
        "ARG SERVICE\n"
        "ARG MODEL\n"
        "ARG LOCAL=x\n"
        "RUN echo ${SERVICE} ${MODEL} ${LOCAL}\n"
        "FROM ${BASE} AS two\n"
        "FROM ${SERVICE}\n",
    )
    plain = parse(path)
    assert plain.stages[0].runs == ["echo  small x"]
    assert plain.final.base == ""
    built = parse(path, {"SERVICE": "two", "MODEL": "big", "LOCAL": "y", "UNDECLARED": "z"})
    assert built.global_args == {"BASE": "python:3.11-slim", "SERVICE": "two", "MODEL": "big"}
    assert built.stages[0].runs == ["echo two big y"]
    assert built.final.parent is built.stage("two")
    assert [stage.name for stage in built.final.lineage()] == ["two", None]


def test_stage_args_do_not_leak_into_the_next_stage(tmp_path: Path) -> None:
    image = parse(write(tmp_path, "FROM a AS one\nARG X=1\nFROM one AS two\nRUN echo ${X}-\n"))
    assert image.stages[1].runs == ["echo -"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN echo\n", "before the first FROM"),
        ("FROM a\nFOO bar\n", "unknown instruction"),
        ("FROM a\nRUN <<EOF\necho\nEOF\n", "heredocs"),
        ("# escape=`\nFROM a\n", "escape"),
        ("FROM a\nRUN echo \\\n", "ends inside a line continuation"),
        ("FROM a\nENV A 1\n", "ENV KEY=value"),
        ('FROM a\nCMD ["python", 1]\n', "array of strings"),
        ("FROM a AS x\nFROM b AS x\n", "share a name"),
        ("FROM a b c d\n", "cannot read FROM"),
        ("FROM a\nHEALTHCHECK --interval=1s python\n", "needs CMD"),
        ("", "no FROM"),
    ],
)
def test_dockerfile_reader_refuses_what_it_does_not_understand(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse(write(tmp_path, text))


def test_substitution_forms() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    assert substitute("${SET}-$SET-${UNSET}", variables) == "x-x-"
    assert substitute("${EMPTY:-d}|${SET:-d}", variables) == "d|x"
    assert substitute("${EMPTY:+w}|${SET:+w}", variables) == "|w"
    assert substitute("\\$SET", variables) == "$SET"


def test_compose_interpolation_and_environment_forms() -> None:
    assert interpolate("${A:-d}", {}) == "d"
    assert interpolate("${A:-d}", {"A": "v"}) == "v"
    assert interpolate("${A:+alt}", {"A": "v"}) == "alt"
    with pytest.raises(ValueError, match="A is required"):
        interpolate("${A:?set it}", {})
    assert environment({"environment": ["A=1", "B"]}) == {"A": "1", "B": None}
    assert environment({"environment": {"A": 1, "B": None}}) == {"A": "1", "B": None}
