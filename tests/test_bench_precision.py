"""bench review_precision (issue #18): the clean corpus and its verdicts are well formed, and a few
of its functions go through a real gateway process, so the benchmark cannot rot."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.__main__ import _joined
from bench._clean_corpus import (
    CLEAN,
    KINDS,
    LICENSES,
    UNLABELLED,
    Verdicts,
    functions_of,
    load_functions,
    load_libraries,
    module_name,
)
from bench.review import parse_options
from bench.review_precision import (
    MODES,
    Options,
    _post,
    cut_out,
    figures,
    measure,
    parse,
    report,
    selected,
)
from bench.review_precision import main as precision_main
from tests.support.fake_llm import served_fake_llm
from tests.support.servers import serving

LIBRARIES = load_libraries()
LICENSED = {"MIT", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0"}
# The bundled model's id as model_host lists it: a model this small is not asked (gateway policy).
BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1"


def test_every_library_folder_is_a_small_repository_with_its_ruff_config_and_license() -> None:
    assert {lib.folder for lib in LIBRARIES} == {p.name for p in CLEAN.iterdir() if p.is_dir()}
    assert len(LIBRARIES) >= 4
    readme = (CLEAN / "README.md").read_text(encoding="utf-8")
    for library in LIBRARIES:
        config = tomllib.loads(library.config().read_text(encoding="utf-8"))
        if library.config().name == "pyproject.toml":
            assert "ruff" in config["tool"], library.folder
        assert any((library.path / name).is_file() for name in LICENSES), library.folder
        assert library.license in LICENSED
        on_disk = {p.relative_to(library.path).as_posix() for p in library.path.rglob("*.py")}
        assert set(library.modules) <= on_disk, library.folder
        assert library.repository in readme
        assert library.commit in readme
        assert len(functions_of(library)) >= 40, library.folder  # every module parses, too
    size = sum(p.stat().st_size for p in CLEAN.rglob("*") if p.is_file())
    assert size < 1_500_000


def test_the_functions_are_many_varied_and_named_as_the_analyzer_takes_them() -> None:
    functions = load_functions(LIBRARIES)
    names = [f.name for f in functions]
    assert 300 <= len(functions) <= 450
    assert len(set(names)) == len(names)
    assert "httpx._urls.URL.__init__" in names  # a dunder method
    assert "click.utils.echo" in names  # a function under src/
    assert "litestar.stores.file.FileStore.get" in names  # an async method
    assert module_name("src/attr/__init__.py") == "attr"


def test_a_method_is_cut_out_and_dedented_as_the_analyzer_sends_it() -> None:
    httpx_lib = next(lib for lib in LIBRARIES if lib.folder == "httpx")
    init = next(f for f in functions_of(httpx_lib) if f.name == "httpx._urls.URL.__init__")
    source = cut_out(httpx_lib, [init])[init.name]
    assert source.startswith("def __init__(self")
    assert "\n        " in source  # the body, one level in


def test_every_verdict_compiles_and_has_a_known_kind_a_rule_and_a_reason() -> None:
    verdicts = Verdicts.load()
    assert verdicts.verdicts
    assert {v.kind for v in verdicts.verdicts} <= set(KINDS)
    assert all(v.rule and v.reason for v in verdicts.verdicts)
    names = {f.name for f in load_functions(LIBRARIES)}
    for verdict in verdicts.verdicts:
        assert verdict.functions <= names, verdict.functions - names
    assert len(verdicts.concerns) >= 2


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[verdict]]\npattern = 'x'\nverdict = 'meh'\nrule = 'X1'\nreason = 'r'\n", "one of wrong"),
        ("[[verdict]]\npattern = '(unclosed'\nverdict = 'fair'\nrule = 'X1'\nreason = 'r'\n", "compile"),
        ("[[verdict]]\npattern = 'x'\nverdict = 'fair'\nrule = 'X1'\n", "reason"),
        ("[[verdict]]\npattern = ''\nverdict = 'fair'\nrule = 'X1'\nreason = 'r'\n", "empty pattern"),
        ("[[concern]]\nname = 'c'\nreason = 'r'\npatterns = ['only one']\n", "two patterns"),
    ],
)
def test_a_malformed_verdicts_file_is_refused(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "verdicts.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Verdicts.load(path)


def test_a_second_suggestion_on_one_concern_is_wrong_and_unknown_ones_are_unlabelled() -> None:
    verdicts = Verdicts.load()
    judged = verdicts.judge(
        "click.utils.echo",
        [
            "echo is too complex; split it into smaller functions.",
            "echo has too many branches; split it up.",
            "Something no verdict has heard of.",
        ],
    )
    assert [j.kind for j in judged] == ["pedantic", "wrong", UNLABELLED]
    assert judged[1].duplicate_of == "echo is too complex; split it into smaller functions."


def test_a_verdict_for_named_functions_comes_before_the_general_one() -> None:
    verdicts = Verdicts.load()
    text = "Do not use assert to check input or state: python -O removes it; raise an exception instead."
    assert verdicts.judge("httpx._urls.QueryParams.__init__", [text])[0].kind == "fair"
    assert verdicts.judge("httpx._auth.DigestAuth._parse_challenge", [text])[0].kind == "pedantic"


def test_the_options() -> None:
    assert parse([]) == Options()
    assert parse(["--mode=repository", "--show", "--json=f.json", "--limit=2"]) == Options(
        modes=("repository",), show=True, json=Path("f.json"), limit=2
    )
    assert parse(["--mode=both"]).modes == MODES
    for bad in (["--mode=fast"], ["--limit=0"], ["--json"], ["--seed=1"]):
        with pytest.raises(SystemExit, match="unknown or malformed option"):
            parse(bad)
    with pytest.raises(SystemExit, match="no library 'numpy'"):
        selected(LIBRARIES, Options(library="numpy"))
    assert [len(f) for f in selected(LIBRARIES, Options(limit=2)).values()] == [2] * len(LIBRARIES)
    # `bench review --clean --mode function` reaches this bench with its options.
    assert _joined(["review", "--clean", "--mode", "function"], ["review"]) == [
        "review",
        "--clean",
        "--mode=function",
    ]
    assert parse_options(["--clean", "--mode=function"]) == {"clean": ""}


def test_an_unknown_library_stops_the_bench_before_any_service_starts() -> None:
    with pytest.raises(SystemExit, match="no library"):
        precision_main(["--library=nope"])


async def test_an_answer_that_is_not_a_review_is_an_error_not_a_crash() -> None:
    answers = iter([(500, b"boom"), (200, b'{"nope": 1}'), (200, b'{"suggestions": [1]}'), (200, b"<html>")])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, body = next(answers)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    function = load_functions(LIBRARIES)[0]
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        errors = [(await _post(client, function, "/analyze", {})).error for _ in range(4)]
    assert errors[0] == "HTTP 500: boom"
    assert all(error and error.startswith("not {'suggestions'") for error in errors[1:]), errors


@pytest.mark.slow
@pytest.mark.nats
async def test_three_functions_in_both_modes_through_real_services_are_judged_and_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = {
        "litestar.datastructures.headers.Headers.__init__",  # a dunder method
        "click.utils.make_str",  # a function under src/
        "litestar.stores.file.FileStore.get",  # an async method
    }
    chosen = {lib.folder: [f for f in functions_of(lib) if f.name in wanted] for lib in LIBRARIES}
    async with served_fake_llm() as fake:
        # The provider stands in for model_host with the bundled model, as `bench review` runs it.
        fake.models = [BUNDLED_MODEL]
        monkeypatch.setenv("LLM_PROVIDER", "local")
        monkeypatch.setenv("LOCAL_LLM_BASE_URL", f"{fake.url}/v1")
        runs = await measure(Options(), LIBRARIES, chosen)
    assert [run.mode for run in runs] == list(MODES)
    verdicts = Verdicts.load()
    for run in runs:
        assert sorted(r.function.name for r in run.reviews) == sorted(wanted)
        assert [r.error for r in run.reviews] == [None, None, None], run.mode
        figures_of, judged = figures(run, verdicts)
        assert figures_of["functions"] == 3
        assert figures_of["suggestions"] == len(judged) == sum(len(r.suggestions) for r in run.reviews)
        assert sum(figures_of["verdicts"].values()) == len(judged)
        json.dumps(figures_of)  # what --json writes
        report([figures_of])
        out = capsys.readouterr().out
        assert f"-- mode {run.mode}: 3 functions" in out
        assert "verdicts           wrong" in out
