"""analyzer.locate: every naming rule of issue 6, sources as they are in the wild, and the errors."""

from __future__ import annotations

import codecs
import gc
import multiprocessing
import random
import textwrap
from concurrent.futures import ProcessPoolExecutor

import pytest

from analyzer.locate import (
    FoundFunction,
    MalformedName,
    NameNotFound,
    SnapshotIndex,
    UnparsableSource,
    parse_files,
)
from tests.analyzer.helpers import index, src

ADD = src("""
    def add(a, b):
        return a + b
""")


# -- module paths -------------------------------------------------------------------------------


def test_module_function_at_the_root() -> None:
    found = index({"module_name.py": ADD}).find("module_name.add")
    assert found == FoundFunction(
        qualified_name="module_name.add",
        path="module_name.py",
        source="def add(a, b):\n    return a + b",
        start_line=1,
        end_line=2,
    )


def test_package_submodule_function() -> None:
    found = index({"pkg/__init__.py": b"", "pkg/sub/__init__.py": b"", "pkg/sub/module.py": ADD}).find(
        "pkg.sub.module.add"
    )
    assert (found.path, found.qualified_name) == ("pkg/sub/module.py", "pkg.sub.module.add")


def test_function_in_a_package_init() -> None:
    found = index({"pkg/__init__.py": ADD, "pkg/other.py": b"x = 1\n"}).find("pkg.add")
    assert (found.path, found.qualified_name) == ("pkg/__init__.py", "pkg.add")


@pytest.mark.parametrize("root", ["src", "lib", "python", "Lib", "my_project", "my-project"])
def test_source_roots_resolve_with_and_without_the_root(root: str) -> None:
    snapshot = index({f"{root}/pkg/__init__.py": b"", f"{root}/pkg/mod.py": ADD}, repo="someone/my-project")
    without = snapshot.find("pkg.mod.add")
    with_root = snapshot.find(f"{root}.pkg.mod.add")
    assert without.path == with_root.path == f"{root}/pkg/mod.py"
    # The name reported is the importable one.
    assert without.qualified_name == with_root.qualified_name == "pkg.mod.add"


def test_a_folder_that_is_not_a_source_root_is_part_of_the_module_name() -> None:
    snapshot = index({"tools/pkg/mod.py": ADD})
    assert snapshot.find("tools.pkg.mod.add").qualified_name == "tools.pkg.mod.add"


# -- definitions inside modules -----------------------------------------------------------------

NESTED = src('''
    import sys


    class Shape:
        """A shape."""

        def area(self):
            return 0

        class Inner:
            def method(self):
                return "inner"

        if sys.version_info >= (3, 11):
            def modern(self):
                return "new"
        else:
            def legacy(self):
                return "old"

        try:
            import fast
        except ImportError:
            def fallback(self):
                return "slow"

        async def fetch(self):
            return await something()


    def outer(x):
        def inner(y):
            return x + y

        class Local:
            def method(self):
                return x

        return inner


    async def download(url):
        async with session() as s:
            return await s.get(url)


    match sys.platform:
        case "win32":
            def platform_name():
                return "windows"
''')


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("shapes.Shape.area", "def area(self):"),
        ("shapes.Shape.Inner.method", "def method(self):"),
        ("shapes.Shape.modern", "def modern(self):"),
        ("shapes.Shape.legacy", "def legacy(self):"),
        ("shapes.Shape.fallback", "def fallback(self):"),
        ("shapes.Shape.fetch", "async def fetch(self):"),
        ("shapes.outer.inner", "def inner(y):"),
        ("shapes.outer.Local.method", "def method(self):"),
        ("shapes.download", "async def download(url):"),
        ("shapes.platform_name", "def platform_name():"),
        ("shapes.outer", "def outer(x):"),
        # A class is a name that exists too: its whole source is reviewed.
        ("shapes.Shape", "class Shape:"),
    ],
)
def test_methods_nested_functions_and_async(name: str, first_line: str) -> None:
    found = index({"shapes.py": NESTED}).find(name)
    assert found.source.splitlines()[0] == first_line
    assert found.qualified_name == name


def test_exact_text_and_line_numbers_of_a_method() -> None:
    found = index({"shapes.py": NESTED}).find("shapes.Shape.Inner.method")
    # As ast.get_source_segment gives it: from the `def`, later lines keep their indentation.
    assert found.source == 'def method(self):\n            return "inner"'
    assert (found.start_line, found.end_line) == (11, 12)


def test_a_qualname_pasted_from_python_with_locals() -> None:
    found = index({"shapes.py": NESTED}).find("shapes.outer.<locals>.inner")
    assert found.qualified_name == "shapes.outer.inner"


DECORATED = src('''
    import functools


    @functools.lru_cache(
        maxsize=None,
    )
    # a comment between decorator and def stays
    @staticmethod
    def cached(x):  # trailing comment on the def line
        """Docstring."""

        # a comment inside
        return x
''')


def test_decorators_comments_and_blank_lines_are_kept() -> None:
    found = index({"deco.py": DECORATED}).find("deco.cached")
    assert found.source == textwrap.dedent('''\
        @functools.lru_cache(
            maxsize=None,
        )
        # a comment between decorator and def stays
        @staticmethod
        def cached(x):  # trailing comment on the def line
            """Docstring."""

            # a comment inside
            return x''')
    assert (found.start_line, found.end_line) == (4, 13)


def test_decorator_with_space_after_the_at_sign() -> None:
    found = index({"m.py": b"class C:\n    @ property\n    def x(self):\n        return 1\n"}).find("m.C.x")
    assert found.source == "@ property\n    def x(self):\n        return 1"
    assert found.start_line == 2


# -- several definitions of one name ------------------------------------------------------------

MULTI = src("""
    import sys
    from typing import overload


    class Box:
        @property
        def size(self):
            return self._size

        def unrelated(self):
            pass

        @size.setter
        def size(self, value):
            self._size = value


    @overload
    def parse(x: int) -> int: ...
    @overload
    def parse(x: str) -> str: ...
    def parse(x):
        return x


    if sys.platform == "win32":
        def sep():
            return "\\\\"
    else:
        def sep():
            return "/"
""")


def test_property_getter_and_setter_come_together_in_source_order() -> None:
    found = index({"multi.py": MULTI}).find("multi.Box.size")
    assert found.source == (
        "@property\n    def size(self):\n        return self._size"
        "\n\n"
        "@size.setter\n    def size(self, value):\n        self._size = value"
    )
    assert (found.start_line, found.end_line, found.definitions) == (6, 15, 2)
    assert "unrelated" not in found.source


def test_overloads_and_implementation_all_come() -> None:
    found = index({"multi.py": MULTI}).find("multi.parse")
    assert found.definitions == 3
    # Nothing but the definitions between them: the file's own text, as it is.
    assert found.source == (
        "@overload\ndef parse(x: int) -> int: ...\n@overload\ndef parse(x: str) -> str: ...\n"
        "def parse(x):\n    return x"
    )


def test_adjacent_getter_and_setter_keep_the_comment_between_them() -> None:
    data = src("""
        class Box:
            @property
            def size(self):
                return self._size  # cached

            # The setter validates.
            @size.setter
            def size(self, value):
                self._size = value
    """)
    found = index({"box.py": data}).find("box.Box.size")
    assert found.source == (
        "@property\n    def size(self):\n        return self._size  # cached\n\n"
        "    # The setter validates.\n    @size.setter\n"
        "    def size(self, value):\n        self._size = value"
    )
    assert (found.start_line, found.end_line, found.definitions) == (2, 9, 2)


def test_if_else_variants_all_come() -> None:
    found = index({"multi.py": MULTI}).find("multi.sep")
    assert found.definitions == 2
    assert found.source == 'def sep():\n        return "\\\\"\n\ndef sep():\n        return "/"'


# -- suffixes and the choice among several matches ----------------------------------------------


def test_unique_suffix_names_resolve() -> None:
    snapshot = index({"pkg/__init__.py": b"", "pkg/sub/mod.py": NESTED})
    assert snapshot.find("mod.Shape.area").qualified_name == "pkg.sub.mod.Shape.area"
    assert snapshot.find("sub.mod.outer.inner").qualified_name == "pkg.sub.mod.outer.inner"
    assert snapshot.find("Shape.Inner.method").qualified_name == "pkg.sub.mod.Shape.Inner.method"
    assert snapshot.find("Inner.method").qualified_name == "pkg.sub.mod.Shape.Inner.method"
    assert snapshot.find("download").qualified_name == "pkg.sub.mod.download"


def _def(name: str) -> bytes:
    return f"def {name}():\n    return {name!r}\n".encode()


def _choose(files: dict[str, bytes], name: str, repo: str = "owner/project") -> str:
    """The path chosen, checked to be the same whatever the order of the files."""
    items = list(files.items())
    chosen = {index(dict(items), repo).find(name).path}
    for seed in range(5):
        random.Random(seed).shuffle(items)
        chosen.add(index(dict(items), repo).find(name).path)
    assert len(chosen) == 1, chosen
    return chosen.pop()


def test_exact_path_beats_source_root_beats_suffix() -> None:
    files = {
        "pkg/mod.py": _def("run"),  # exact for pkg.mod.run
        "src/pkg/mod.py": _def("run"),  # source root
        "a/pkg/mod.py": _def("run"),  # suffix
    }
    assert _choose(files, "pkg.mod.run") == "pkg/mod.py"
    del files["pkg/mod.py"]
    assert _choose(files, "pkg.mod.run") == "src/pkg/mod.py"
    del files["src/pkg/mod.py"]
    assert _choose(files, "pkg.mod.run") == "a/pkg/mod.py"


def test_exact_match_in_test_code_beats_a_suffix_match_elsewhere() -> None:
    files = {"tests/helpers.py": _def("run"), "app/tests/helpers.py": _def("run")}
    assert _choose(files, "tests.helpers.run") == "tests/helpers.py"


def test_non_test_code_beats_test_code_then_the_shortest_path() -> None:
    files = {
        "tests/util.py": _def("run"),
        "pkg/deep/er/util.py": _def("run"),
        "pkg/test_util.py": _def("run"),
        "pkg/conftest.py": _def("run"),
    }
    assert _choose(files, "run") == "pkg/deep/er/util.py"
    files["pkg/deeper/util.py"] = _def("run")
    assert _choose(files, "run") == "pkg/deeper/util.py"
    files["zz/util.py"] = _def("run")
    assert _choose(files, "run") == "zz/util.py"  # fewer folders first
    files["aa/util.py"] = _def("run")
    assert _choose(files, "run") == "aa/util.py"  # then alphabetical at the same length
    files["b/u.py"] = _def("run")
    assert _choose(files, "run") == "b/u.py"  # then fewer characters


def test_py_beats_its_stub() -> None:
    files = {"pkg/mod.pyi": b"def run() -> str: ...\n", "pkg/mod.py": _def("run")}
    assert _choose(files, "pkg.mod.run") == "pkg/mod.py"
    found = index({"pkg/mod.pyi": b"def run() -> str: ...\n"}).find("pkg.mod.run")
    assert found.source == "def run() -> str: ..."


def test_a_module_name_that_also_matches_a_class_path() -> None:
    # `a.b.c`: function c in a/b.py, and method c of class b in a.py. Both exact; a.py is shorter.
    files = {"a.py": b"class b:\n    def c(self):\n        pass\n", "a/b.py": _def("c")}
    assert _choose(files, "a.b.c") == "a.py"
    del files["a.py"]
    assert _choose(files, "a.b.c") == "a/b.py"


def test_falls_through_to_a_lower_tier_when_the_exact_module_lacks_the_name() -> None:
    files = {"pkg/mod.py": _def("other"), "x/pkg/mod.py": _def("run")}
    assert _choose(files, "pkg.mod.run") == "x/pkg/mod.py"


# -- sources as they are in the wild ------------------------------------------------------------


def test_pep263_latin1_cookie() -> None:
    data = "# -*- coding: latin-1 -*-\ndef greet():\n    return 'héllo'\n".encode("latin-1")
    found = index({"old.py": data}).find("old.greet")
    assert found.source == "def greet():\n    return 'héllo'"


def test_cookie_on_the_second_line_and_non_ascii_identifiers() -> None:
    data = "#!/usr/bin/env python\n# coding: cp1252\ndef café():\n    return '€'\n".encode("cp1252")
    found = index({"shop.py": data}).find("shop.café")
    assert found.source == "def café():\n    return '€'"
    # Found by suffix too, which reads names from the text.
    assert index({"shop.py": data}).find("café").path == "shop.py"


def test_the_source_is_whole_lines_a_trailing_comment_included() -> None:
    data = src("""
        class Base:
            def run(self):
                raise NotImplementedError()  # pragma: no cover

            @property
            def size(self): return 1  # one-liner
        X = 1
    """)
    snapshot = index({"base.py": data})
    run = snapshot.find("base.Base.run")
    assert run.source == "def run(self):\n        raise NotImplementedError()  # pragma: no cover"
    assert (run.start_line, run.end_line, run.indent) == (2, 3, "    ")
    size = snapshot.find("Base.size")
    assert size.source == "@property\n    def size(self): return 1  # one-liner"
    assert snapshot.find("base.Base").source.endswith("# one-liner")


def test_utf8_non_ascii_text_columns() -> None:
    data = "class Ä:\n    def ü(self): return 'ß'  # ok\n".encode()
    found = index({"u.py": data}).find("u.Ä.ü")
    # The start is found by its UTF-8 byte column; the end is the end of the line.
    assert found.source == "def ü(self): return 'ß'  # ok"
    assert found.indent == "    "


def test_bom_is_dropped_and_positions_hold() -> None:
    data = b"\xef\xbb\xbf" + ADD
    found = index({"bom.py": data}).find("bom.add")
    assert found.source == "def add(a, b):\n    return a + b"
    assert found.start_line == 1


def test_crlf_line_ends_are_kept() -> None:
    data = b"import os\r\n\r\n@dec\r\ndef f():\r\n    return 1\r\n"
    found = index({"win.py": data}).find("win.f")
    assert found.source == "@dec\r\ndef f():\r\n    return 1"
    assert (found.start_line, found.end_line) == (3, 5)


def test_old_mac_cr_line_ends() -> None:
    data = b"import os\r@dec\rdef f():\r    return 1\r\rclass C:\r    def m(self): pass\r"
    snapshot = index({"cr.py": data})
    found = snapshot.find("cr.f")
    assert (found.source, found.start_line, found.end_line) == ("@dec\rdef f():\r    return 1", 2, 4)
    assert snapshot.find("cr.C.m").start_line == 7


def test_tabs_and_form_feed() -> None:
    data = b"class C:\n\tdef m(self):\n\t\treturn 1\n\x0c\n\tdef n(self):\n\t\treturn 2\n"
    snapshot = index({"tabs.py": data})
    assert snapshot.find("tabs.C.m").source == "def m(self):\n\t\treturn 1"
    # A form feed is not a line end for Python: line numbers after it still agree with ast.
    found = snapshot.find("tabs.C.n")
    assert (found.source, found.start_line) == ("def n(self):\n\t\treturn 2", 5)


def test_a_file_that_does_not_parse_breaks_only_lookups_in_it() -> None:
    snapshot = index({"py2.py": b"def old():\n    print 'hi'\n", "good.py": ADD, "pkg/mod.py": _def("run")})
    assert snapshot.find("good.add").path == "good.py"
    assert snapshot.find("add").path == "good.py"
    assert snapshot.find("run").path == "pkg/mod.py"
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("py2.old")
    assert caught.value.path == "py2.py"
    assert "Missing parentheses" in caught.value.error
    assert "line 2" in caught.value.error
    # The app answers the message as it is: one sentence that names the file, the name and why.
    assert str(caught.value) == (
        "py2.py does not parse as Python 3.11, so 'py2.old' cannot be read from it: "
        "line 2: Missing parentheses in call to 'print'. Did you mean print(...)?"
    )
    # By suffix too.
    with pytest.raises(UnparsableSource):
        snapshot.find("old")


def test_bytes_that_are_not_valid_in_the_declared_encoding() -> None:
    snapshot = index(
        {"bad.py": b"def f():\n    return '\xff\xfe'\n", "cookie.py": b"# coding: nope\ndef g(): pass\n"}
    )
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("bad.f")
    assert caught.value.path == "bad.py"
    assert "utf-8" in caught.value.error
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("cookie.g")
    assert "nope" in caught.value.error


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib", "punycode", "undefined"])
def test_a_codec_that_is_not_a_text_encoding_breaks_only_its_own_file(codec: str) -> None:
    # The cookie names a codec Python knows but cannot decode source with (LookupError or a bare
    # UnicodeError); a file beside it has a non-ASCII name, so the name index decodes every file.
    files = {
        "odd.py": f"# coding: {codec}\ndef odd():\n    return 1\n".encode(),
        "calc.py": "def café():\n    return 1\n\n\ndef add(a, b):\n    return a + b\n".encode(),
    }
    snapshot = index(files)
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("odd.odd")
    assert caught.value.path == "odd.py"
    assert codec in caught.value.error
    with pytest.raises(UnparsableSource):
        snapshot.find("odd")  # by suffix: the only file that defines it
    assert snapshot.find("add").path == "calc.py"
    assert snapshot.find("café").path == "calc.py"
    with pytest.raises(NameNotFound):
        snapshot.find("cafe_au_lait")
    # The warm-up's parse of the whole snapshot does not stop at that file either.
    tables = parse_files(files)
    assert set(tables) == {"odd.py", "calc.py"}


def test_a_module_whose_file_does_not_decode_is_that_files_error_whatever_the_name() -> None:
    # All of it rot13 (cookie aside), or bad bytes for its encoding: its bytes say nothing of
    # what it defines, so a name that spells out its module is that file's, found or not.
    rot = b"# coding: rot13\n" + codecs.encode("def hello():\n    return 1\n", "rot13").encode()
    files = {
        "rot.py": rot,
        "latin.py": "def caf\u00e9():\n    return '\u00e9'\n".encode("latin-1"),
        "vendor/rot.py": _def("hello"),
        "vendor/latin.py": _def("other"),
        "pkg/__init__.py": b"from rot import hello\n",
    }
    snapshot = index(files)
    for name, path in [
        ("rot.hello", "rot.py"),
        ("rot.missing", "rot.py"),
        ("pkg.hello", "rot.py"),
        ("latin.other", "latin.py"),
    ]:
        with pytest.raises(UnparsableSource) as caught:
            snapshot.find(name)
        assert caught.value.path == path, name
    assert "'rot13' cannot decode it" in caught_error(snapshot, "rot.hello")
    assert "encoding" in caught_error(snapshot, "latin.other")
    assert caught_via(snapshot, "pkg.hello") == "pkg/__init__.py"
    # A name that spells out no module is not that file's: the file that shows it wins.
    assert snapshot.find("hello").path == "vendor/rot.py"
    assert snapshot.find("other").path == "vendor/latin.py"


def caught_error(snapshot: SnapshotIndex, name: str) -> str:
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find(name)
    return caught.value.error


def caught_via(snapshot: SnapshotIndex, name: str) -> str | None:
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find(name)
    return caught.value.via


def test_null_bytes_do_not_parse() -> None:
    with pytest.raises(UnparsableSource):
        index({"nul.py": b"def f():\n    return 1\x00\n"}).find("nul.f")


def test_a_broken_file_that_does_not_define_the_name_does_not_hide_a_match() -> None:
    # The exact module is broken and never mentions `run`; the suffix match is the answer.
    snapshot = index({"pkg/mod.py": b"def other(:\n", "vendor/pkg/mod.py": _def("run")})
    assert snapshot.find("pkg.mod.run").path == "vendor/pkg/mod.py"


def test_a_suffix_name_prefers_a_file_that_parses_over_a_broken_one_that_ranks_first() -> None:
    # Both define `run`; the broken one has the shorter path, but a suffix names no file, and a
    # name that exists must not be answered with an error.
    snapshot = index({"a/m.py": b"def run():\n    print 'py2'\n", "bb/m.py": _def("run")})
    assert snapshot.find("m.run").path == "bb/m.py"
    assert snapshot.find("run").path == "bb/m.py"


def test_a_broken_file_the_name_spells_out_is_blamed_even_if_a_suffix_matches_elsewhere() -> None:
    snapshot = index({"pkg/mod.py": b"def run(:\n    pass\n", "x/pkg/mod.py": _def("run")})
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("pkg.mod.run")
    assert caught.value.path == "pkg/mod.py"


def test_parsing_leaves_the_cyclic_collector_as_it_found_it() -> None:
    files = {"good.py": ADD, "bad.py": b"def f(:\n"}
    assert gc.isenabled()
    index(files).find("good.add")
    assert gc.isenabled()
    with pytest.raises(UnparsableSource):
        index(files).find("bad.f")
    assert gc.isenabled()
    gc.disable()
    try:
        index(files).find("good.add")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_files_other_than_python_are_ignored() -> None:
    snapshot = index({"README.md": b"def add(a, b): ...\n", "setup.cfg": b"", "m.py": ADD})
    assert len(snapshot) == 1
    assert snapshot.find("add").path == "m.py"


# -- bad names and names that do not exist ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        ".add",
        "add.",
        "mod..add",
        "mod.a dd",
        "mod/add",
        "mod.add()",
        "mod:add",
        "mod.class",
        "mod.1x",
    ],
)
def test_malformed_names_are_invalid(name: str) -> None:
    with pytest.raises(MalformedName):
        index({"mod.py": ADD}).find(name)


def test_an_overlong_name_is_invalid() -> None:
    with pytest.raises(MalformedName, match="longer than"):
        index({"mod.py": ADD}).find("a." * 600 + "f")


def test_too_many_parts_is_invalid() -> None:
    with pytest.raises(MalformedName, match="more than 100 dotted parts"):
        index({"mod.py": ADD}).find(".".join(["a"] * 101))
    with pytest.raises(NameNotFound):
        index({"mod.py": ADD}).find(".".join(["a"] * 100))


def test_messages_quote_a_long_name_shortened_but_keep_it_whole() -> None:
    name = "m" * 300 + ".f"
    with pytest.raises(NameNotFound) as caught:
        index({"mod.py": ADD}).find(name)
    assert caught.value.name == name
    assert len(str(caught.value)) < 300


def test_invalid_name_is_a_value_error_and_says_why() -> None:
    with pytest.raises(ValueError, match="empty part"):
        index({"mod.py": ADD}).find("mod..add")


def test_surrounding_whitespace_is_forgiven() -> None:
    assert index({"mod.py": ADD}).find("  mod.add\n").qualified_name == "mod.add"


def test_module_parts_that_are_file_stems_not_identifiers() -> None:
    snapshot = index({"scripts/my-tool.py": ADD, "2to3.py": _def("main")})
    assert snapshot.find("scripts.my-tool.add").path == "scripts/my-tool.py"
    assert snapshot.find("2to3.main").path == "2to3.py"


def test_not_found_lists_close_names_that_exist() -> None:
    snapshot = index({"calc/__init__.py": b"", "calc/ops.py": ADD + _def("add_many") + _def("subtract")})
    with pytest.raises(NameNotFound) as caught:
        snapshot.find("calc.ops.ad")
    error = caught.value
    assert isinstance(error, LookupError)
    assert error.name == "calc.ops.ad"
    assert error.suggestions[0] == "calc.ops.add"
    assert "calc.ops.add_many" in error.suggestions
    assert 0 < len(error.suggestions) <= 5
    assert "calc.ops.add" in str(error)
    for suggestion in error.suggestions:
        assert snapshot.find(suggestion).qualified_name == suggestion


def test_a_typo_in_the_module_part_suggests_the_right_module() -> None:
    snapshot = index({"calc/ops.py": ADD, "calc/other.py": _def("unrelated")})
    with pytest.raises(NameNotFound) as caught:
        snapshot.find("calc.opps.add")
    assert caught.value.suggestions[0] == "calc.ops.add"


def test_at_most_five_suggestions() -> None:
    body = b"".join(_def(f"handle_{i}") for i in range(20))
    with pytest.raises(NameNotFound) as caught:
        index({"h.py": body}).find("h.handle_")
    assert len(caught.value.suggestions) == 5


def test_nothing_close_means_no_suggestions() -> None:
    with pytest.raises(NameNotFound) as caught:
        index({"mod.py": ADD}).find("zzz.qqq")
    assert caught.value.suggestions == []
    assert "close names" not in str(caught.value)


def test_a_module_is_not_a_function() -> None:
    with pytest.raises(NameNotFound) as caught:
        index({"pkg/mod.py": ADD}).find("pkg.mod")
    assert caught.value.suggestions == ["pkg.mod.add"]


def test_an_empty_snapshot_finds_nothing() -> None:
    with pytest.raises(NameNotFound):
        SnapshotIndex({}, "o/r").find("mod.add")


def test_a_name_in_a_string_or_comment_is_not_a_definition() -> None:
    with pytest.raises(NameNotFound):
        index({"doc.py": b'"""\ndef ghost():\n    pass\n"""\n# def ghost(): pass\n'}).find("ghost")


# -- warming an index in another process -------------------------------------------------------


def test_tables_parsed_in_another_process_are_adopted_and_used() -> None:
    files = {
        "shapes.py": NESTED,
        "multi.py": MULTI,
        "py2.py": b"def old():\n    print 'x'\n",
        "README.md": b"x",
    }
    snapshot = index(files)
    assert set(snapshot.unparsed()) == {"shapes.py", "multi.py", "py2.py"}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        tables = pool.submit(parse_files, snapshot.unparsed()).result()
    assert snapshot.adopt(tables) == 3
    assert snapshot.unparsed() == {}
    assert snapshot.adopt(tables) == 0
    # Answers are the same as from a fresh index that parses for itself.
    for name in ["shapes.Shape.Inner.method", "multi.Box.size", "Inner.method", "sep"]:
        assert snapshot.find(name) == index(files).find(name)
    with pytest.raises(UnparsableSource):
        snapshot.find("py2.old")


def test_adopt_refuses_what_parse_files_did_not_make() -> None:
    with pytest.raises(TypeError, match="parse_files"):
        index({"m.py": ADD}).adopt({"m.py": "def add(): ..."})  # type: ignore[dict-item]


# -- what the function listing reads ------------------------------------------------------------


def test_source_files_and_definitions_are_what_lookups_see() -> None:
    snapshot = index(
        {
            "src/pkg/shapes.py": src("""
                class Shape:
                    def area(self):
                        return 0

                def make():
                    return Shape()
            """),
            "src/pkg/shapes.pyi": b"def make() -> object: ...\n",
            "py2.py": b"def old():\n    print 'x'\n",
            "README.md": b"x",
        }
    )
    files = {f.path: f for f in snapshot.source_files()}
    assert set(files) == {"src/pkg/shapes.py", "src/pkg/shapes.pyi", "py2.py"}
    assert files["src/pkg/shapes.py"].display_module == ("pkg", "shapes")
    definitions = snapshot.definitions("src/pkg/shapes.py")
    assert {name: spans[0].start_line for name, spans in definitions.items()} == {
        "Shape": 1,
        "Shape.area": 2,
        "make": 5,
    }
    # The listing's parse is the lookups' parse: nothing is left for the warm-up to do there.
    assert "src/pkg/shapes.py" not in snapshot.unparsed()
    assert snapshot.definitions("py2.py") == {}
    with pytest.raises(KeyError):
        snapshot.definitions("README.md")
