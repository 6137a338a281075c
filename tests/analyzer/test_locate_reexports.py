"""analyzer.locate: public names that reach their definition through imports (re-exports).

`httpx.Client.send` is defined in `httpx/_client.py` and reaches `httpx` through
`from ._client import Client` (or a star import) in `httpx/__init__.py`: the answer names where
the definition really is, with its exact text.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping

import pytest

from analyzer.locate import (
    MAX_REEXPORT_HOPS,
    FoundFunction,
    NameNotFound,
    SnapshotIndex,
    UnparsableSource,
)


def src(text: str) -> bytes:
    return textwrap.dedent(text).lstrip("\n").encode()


def index(files: Mapping[str, bytes | str], repo: str = "owner/project") -> SnapshotIndex:
    return SnapshotIndex({p: (d.encode() if isinstance(d, str) else d) for p, d in files.items()}, repo)


CLIENT = src('''
    class Client:
        """A client."""

        def send(self, request):
            return request

        @property
        def timeout(self):
            return 5


    class AsyncClient:
        async def send(self, request):
            return request
''')


def where(found: FoundFunction) -> tuple[str, str]:
    return found.path, found.qualified_name


# -- the import forms -----------------------------------------------------------------------------


def test_a_method_of_a_class_re_exported_by_a_package_init() -> None:
    snapshot = index(
        {"httpx/__init__.py": "from ._client import AsyncClient, Client\n", "httpx/_client.py": CLIENT}
    )
    found = snapshot.find("httpx.Client.send")
    assert found == FoundFunction(
        qualified_name="httpx._client.Client.send",
        path="httpx/_client.py",
        source="def send(self, request):\n        return request",
        start_line=4,
        end_line=5,
        indent="    ",
    )
    # The same text as the defining module's own path gives.
    assert found == snapshot.find("httpx._client.Client.send")
    assert where(snapshot.find("httpx.AsyncClient.send")) == (
        "httpx/_client.py",
        "httpx._client.AsyncClient.send",
    )
    assert snapshot.find("httpx.Client").source.startswith('class Client:\n    """A client."""')
    assert (
        snapshot.find("httpx.Client.timeout").source == "@property\n    def timeout(self):\n        return 5"
    )


def test_an_import_under_another_name() -> None:
    snapshot = index({"pkg/__init__.py": "from .impl import Client as Session\n", "pkg/impl.py": CLIENT})
    assert where(snapshot.find("pkg.Session.send")) == ("pkg/impl.py", "pkg.impl.Client.send")
    assert where(snapshot.find("pkg.Session")) == ("pkg/impl.py", "pkg.impl.Client")
    # The name the import hides is not a name of the package.
    with pytest.raises(NameNotFound):
        snapshot.find("pkg.Client.send")


def test_an_absolute_import_inside_the_snapshot() -> None:
    snapshot = index({"pkg/__init__.py": "from pkg.impl import Client\n", "pkg/impl.py": CLIENT})
    assert where(snapshot.find("pkg.Client.send")) == ("pkg/impl.py", "pkg.impl.Client.send")


def test_an_absolute_import_under_a_source_root() -> None:
    snapshot = index(
        {"src/pkg/__init__.py": "from pkg.core.impl import Client\n", "src/pkg/core/impl.py": CLIENT},
        repo="someone/pkg",
    )
    for name in ("pkg.Client.send", "src.pkg.Client.send"):
        assert where(snapshot.find(name)) == ("src/pkg/core/impl.py", "pkg.core.impl.Client.send"), name


def test_an_absolute_import_prefers_the_importing_files_own_source_root() -> None:
    snapshot = index(
        {
            "src/pkg/__init__.py": "from pkg.impl import Client\n",
            "src/pkg/impl.py": CLIENT,
            # Another copy of `pkg` at the root: `pkg/impl.py` would be the exact module name.
            "pkg/impl.py": CLIENT.replace(b"return request", b"return None"),
        }
    )
    assert snapshot.find("src.pkg.Client.send").path == "src/pkg/impl.py"


def test_a_submodule_imported_with_from_dot_import() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from . import impl as backend\n",
            "pkg/impl.py": CLIENT,
            "app.py": "from pkg import impl\n",
        }
    )
    assert where(snapshot.find("pkg.backend.Client.send")) == ("pkg/impl.py", "pkg.impl.Client.send")
    # An ordinary module that imports a submodule: the name continues through it.
    assert where(snapshot.find("app.impl.Client.send")) == ("pkg/impl.py", "pkg.impl.Client.send")


def test_import_a_module_as_an_alias_and_plain() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/impl.py": CLIENT,
            "app.py": "import pkg.sub.impl as m\nimport pkg.sub.impl\n",
        }
    )
    assert where(snapshot.find("app.m.Client.send")) == ("pkg/sub/impl.py", "pkg.sub.impl.Client.send")
    # `import pkg.sub.impl` binds `pkg`: `app.pkg.sub.impl.Client` is that class.
    assert where(snapshot.find("app.pkg.sub.impl.Client.send")) == (
        "pkg/sub/impl.py",
        "pkg.sub.impl.Client.send",
    )
    # A module is not a function.
    with pytest.raises(NameNotFound):
        snapshot.find("app.m")


def test_a_chain_of_re_exports() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .api import Client\n",
            "pkg/api.py": "from ._internal import Client  # re-exported\n",
            "pkg/_internal/__init__.py": "from ._client import Client as Client\n",
            "pkg/_internal/_client.py": CLIENT,
        }
    )
    expected = ("pkg/_internal/_client.py", "pkg._internal._client.Client.send")
    assert where(snapshot.find("pkg.Client.send")) == expected
    # In an ordinary module too.
    assert where(snapshot.find("pkg.api.Client.send")) == expected


def test_relative_imports_at_every_level() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "",
            "pkg/core.py": CLIENT,
            "pkg/a/__init__.py": "from ..core import Client\n",
            "pkg/a/b/__init__.py": "from ...core import AsyncClient\n",
            "pkg/a/b/c.py": "from ... import core\nfrom ..b import AsyncClient\n",
            # Above the top of the snapshot: names nothing.
            "pkg/a/bad.py": "from .... import core\nfrom ....x import Client\n",
        }
    )
    assert where(snapshot.find("pkg.a.Client.send")) == ("pkg/core.py", "pkg.core.Client.send")
    assert where(snapshot.find("pkg.a.b.AsyncClient.send")) == ("pkg/core.py", "pkg.core.AsyncClient.send")
    assert where(snapshot.find("pkg.a.b.c.core.Client.send")) == ("pkg/core.py", "pkg.core.Client.send")
    assert where(snapshot.find("pkg.a.b.c.AsyncClient.send")) == ("pkg/core.py", "pkg.core.AsyncClient.send")
    for name in ("pkg.a.bad.core.Client.send", "pkg.a.bad.Client.send"):
        with pytest.raises(NameNotFound):
            snapshot.find(name)


def test_a_function_re_exported_and_an_alias_assignment() -> None:
    snapshot = index(
        {
            "attr/__init__.py": "from ._make import attrs\n\ns = attributes = attrs\n",
            "attr/_make.py": "def attrs(maybe_cls=None):\n    return maybe_cls\n",
        }
    )
    for name in ("attr.attrs", "attr.s", "attr.attributes"):
        assert where(snapshot.find(name)) == ("attr/_make.py", "attr._make.attrs"), name


def test_try_except_import_variants_take_the_first_that_resolves() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": src("""
                try:
                    from ._speedups import Client
                except ImportError:
                    from ._pure import Client
            """),
            "pkg/_speedups.py": "Client = None  # built at install time\n",
            "pkg/_pure.py": CLIENT,
        }
    )
    assert snapshot.find("pkg.Client.send").path == "pkg/_pure.py"


def test_a_re_exported_name_that_is_not_a_function_is_not_found() -> None:
    snapshot = index({"pkg/__init__.py": "from .config import TIMEOUT\n", "pkg/config.py": "TIMEOUT = 5\n"})
    with pytest.raises(NameNotFound):
        snapshot.find("pkg.TIMEOUT")


# -- star imports -------------------------------------------------------------------------------


def test_star_import_follows_a_name_listed_in_all() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from ._client import *\nfrom ._models import *\n",
            "pkg/_client.py": b'__all__ = ["Client"]\n\n' + CLIENT,
            "pkg/_models.py": src("""
                __all__ = ("Response",)
                __all__ += ["helper"]
                __all__.extend(["extended"])
                __all__.append("appended")


                class Response:
                    def json(self):
                        return {}


                def helper():
                    pass


                def extended():
                    pass


                def appended():
                    pass


                def unlisted():
                    pass
            """),
        }
    )
    assert where(snapshot.find("pkg.Client.send")) == ("pkg/_client.py", "pkg._client.Client.send")
    assert where(snapshot.find("pkg.Response.json")) == ("pkg/_models.py", "pkg._models.Response.json")
    for name in ("helper", "extended", "appended"):
        assert where(snapshot.find(f"pkg.{name}")) == ("pkg/_models.py", f"pkg._models.{name}")
    # Public, but not in `__all__`: a star import does not bring it.
    for name in ("pkg.AsyncClient.send", "pkg.unlisted"):
        with pytest.raises(NameNotFound):
            snapshot.find(name)


def test_star_import_without_all_brings_public_module_level_names_only() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .impl import *\n",
            "pkg/impl.py": src("""
                from .deeper import deep


                def public():
                    pass


                def _private():
                    pass


                class Public:
                    def method(self):
                        def nested():
                            pass
            """),
            "pkg/deeper.py": "def deep():\n    pass\n",
        }
    )
    assert where(snapshot.find("pkg.public")) == ("pkg/impl.py", "pkg.impl.public")
    assert where(snapshot.find("pkg.Public.method")) == ("pkg/impl.py", "pkg.impl.Public.method")
    # A public name the module imports comes too (as Python does), and the chain goes on.
    assert where(snapshot.find("pkg.deep")) == ("pkg/deeper.py", "pkg.deeper.deep")
    for name in ("pkg._private", "pkg.method", "pkg.nested"):
        with pytest.raises(NameNotFound):
            snapshot.find(name)


def test_a_computed_all_lets_no_star_import_through() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .impl import *\n",
            "pkg/impl.py": "from . import other\n__all__ = other.names()\n\n\ndef run():\n    pass\n",
        }
    )
    with pytest.raises(NameNotFound):
        snapshot.find("pkg.run")


def test_an_explicit_import_beats_a_star_import() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .a import *\nfrom .b import run\n",
            "pkg/a.py": "def run():\n    return 'a'\n",
            "pkg/b.py": "def run():\n    return 'b'\n",
        }
    )
    assert snapshot.find("pkg.run").path == "pkg/b.py"


# -- bounded ------------------------------------------------------------------------------------


def test_import_cycles_end_without_error() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .a import *\n",
            "pkg/a.py": "from .b import Thing\nfrom .b import *\n",
            "pkg/b.py": "from .a import Thing\nfrom .a import *\nfrom . import b as me\n",
            "pkg/self.py": "from .self import *\nfrom .self import loop\nloop2 = loop\nloop = loop2\n",
        }
    )
    for name in (
        "pkg.Thing",
        "pkg.Thing.method",
        "pkg.a.Thing",
        "pkg.b.me.me.Thing",
        "pkg.self.loop",
        "pkg.x",
    ):
        with pytest.raises(NameNotFound):
            snapshot.find(name)


def chain(length: int) -> dict[str, bytes]:
    files = {f"pkg/m{i}.py": f"from .m{i + 1} import target\n".encode() for i in range(length)}
    files[f"pkg/m{length}.py"] = b"def target():\n    pass\n"
    files["pkg/__init__.py"] = b"from .m0 import target\n"
    return files


def test_a_chain_as_long_as_the_limit_resolves() -> None:
    # pkg/__init__ -> m0 -> ... : MAX_REEXPORT_HOPS imports in all.
    found = index(chain(MAX_REEXPORT_HOPS - 1)).find("pkg.target")
    assert found.path == f"pkg/m{MAX_REEXPORT_HOPS - 1}.py"


def test_a_chain_longer_than_the_limit_ends_without_error() -> None:
    with pytest.raises(NameNotFound):
        index(chain(MAX_REEXPORT_HOPS + 5)).find("pkg.target")


def test_only_the_files_on_the_chain_are_parsed() -> None:
    files = {
        "pkg/__init__.py": b"from ._client import Client\nfrom ._other import Other\nfrom .unused import *\n",
        "pkg/_client.py": CLIENT,
        "pkg/_other.py": b"class Other:\n    pass\n",
        "pkg/unused.py": b"def unused():\n    pass\n",
        "tests/test_client.py": b"from pkg import Client\n",
    }
    snapshot = index(files)
    snapshot.find("pkg.Client.send")
    assert sorted(snapshot.unparsed()) == ["pkg/_other.py", "pkg/unused.py", "tests/test_client.py"]


# -- where re-exports rank ----------------------------------------------------------------------


def test_a_local_definition_shadows_a_re_export() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": src("""
                from .impl import Client, run


                def run():
                    return 'local'


                class Client:
                    pass
            """),
            "pkg/impl.py": CLIENT + b"\n\ndef run():\n    return 'impl'\n",
        }
    )
    assert where(snapshot.find("pkg.run")) == ("pkg/__init__.py", "pkg.run")
    # The local class has no `send`: the import it replaced is not consulted.
    with pytest.raises(NameNotFound):
        snapshot.find("pkg.Client.send")


def test_a_definition_in_a_module_on_the_chain_beats_its_own_imports() -> None:
    snapshot = index(
        {
            "pkg/__init__.py": "from .api import run\n",
            "pkg/api.py": "from .impl import run\n\n\ndef run():\n    return 'api'\n",
            "pkg/impl.py": "def run():\n    return 'impl'\n",
        }
    )
    assert snapshot.find("pkg.run").path == "pkg/api.py"


# -- where a re-export ranks: after the direct matches of its own tier, before the next tier ------


def _choose(files: Mapping[str, str], name: str) -> tuple[str, str]:
    """Where `name` is found (path, qualified name), checked to be the same whatever the order of
    the files."""
    items = list(files.items())
    chosen = {where(index(dict(items)).find(name))}
    for seed in range(5):
        random.Random(seed).shuffle(items)
        chosen.add(where(index(dict(items)).find(name)))
    assert len(chosen) == 1, chosen
    return chosen.pop()


def test_a_re_export_by_the_module_the_name_spells_out_beats_a_suffix_match() -> None:
    # `pkg.run` re-exported by pkg/__init__.py; `vendor/pkg.py` (its module ends with `pkg`, a mere
    # suffix match) and `other.py` (class `pkg`, a suffix without a module part) define `run`.
    # The package's public name is what the user means.
    files = {
        "pkg/__init__.py": "from .impl import run\n",
        "pkg/impl.py": "def run():\n    return 'impl'\n",
        "vendor/pkg.py": "def run():\n    return 'vendored'\n",
        "other.py": "class pkg:\n    def run(self):\n        return 'method'\n",
    }
    assert _choose(files, "pkg.run") == ("pkg/impl.py", "pkg.impl.run")
    # The suffix matches are still found by names that spell them out.
    assert _choose(files, "vendor.pkg.run") == ("vendor/pkg.py", "vendor.pkg.run")
    assert _choose(files, "other.pkg.run") == ("other.py", "other.pkg.run")
    # The walk from the exact module answers before any suffix candidate is looked for: the
    # suffix files are not even parsed.
    snapshot = index(files)
    snapshot.find("pkg.run")
    assert sorted(snapshot.unparsed()) == ["other.py", "vendor/pkg.py"]


def test_the_order_of_the_tiers_with_re_exports() -> None:
    # Every tier for `pkg.run`; each step removes what answered the one before.
    files = {
        # 1. a direct match, module path exact from the repository root
        "pkg.py": "def run():\n    return 1\n",
        # 2. a re-export by an exact module
        "pkg/__init__.py": "from .impl import run\n",
        "pkg/impl.py": "def run():\n    return 2\n",
        # 3. a direct match from a source root
        "src/pkg.py": "def run():\n    return 3\n",
        # 4. a re-export by a module from a source root
        "lib/pkg/__init__.py": "from .core import run\n",
        "lib/pkg/core.py": "def run():\n    return 4\n",
        # 5. a direct suffix match
        "vendor/pkg.py": "def run():\n    return 5\n",
        # 6. a re-export by a suffix module
        "third_party/pkg/__init__.py": "from ._run import run\n",
        "third_party/pkg/_run.py": "def run():\n    return 6\n",
    }
    assert _choose(files, "pkg.run") == ("pkg.py", "pkg.run")
    del files["pkg.py"]
    assert _choose(files, "pkg.run") == ("pkg/impl.py", "pkg.impl.run")
    # pkg/__init__.py stays, importing from a module that is gone: it leads nowhere, the next
    # tier answers.
    del files["pkg/impl.py"]
    assert _choose(files, "pkg.run") == ("src/pkg.py", "pkg.run")
    del files["src/pkg.py"]
    assert _choose(files, "pkg.run") == ("lib/pkg/core.py", "pkg.core.run")
    del files["lib/pkg/core.py"]
    assert _choose(files, "pkg.run") == ("vendor/pkg.py", "vendor.pkg.run")
    del files["vendor/pkg.py"]
    assert _choose(files, "pkg.run") == ("third_party/pkg/_run.py", "third_party.pkg._run.run")
    del files["third_party/pkg/_run.py"]
    with pytest.raises(NameNotFound):
        index(files).find("pkg.run")


@pytest.mark.parametrize("root", ["", "src/"])
def test_a_direct_match_beats_a_re_export_of_its_tier_even_from_a_better_ranked_file(root: str) -> None:
    # `pkg.py` ranks above `pkg/__init__.py` (fewer folders), but it only imports `run`.
    files = {
        f"{root}pkg.py": "from .impl import run\n",
        f"{root}impl.py": "def run():\n    return 'impl'\n",
        f"{root}pkg/__init__.py": "def run():\n    return 'package'\n",
    }
    assert _choose(files, "pkg.run") == (f"{root}pkg/__init__.py", "pkg.run")
    del files[f"{root}pkg/__init__.py"]
    assert _choose(files, "pkg.run") == (f"{root}impl.py", "impl.run")


def test_re_exports_within_a_tier_follow_the_file_order() -> None:
    # Two exact modules re-export `run`: the better ranked file (fewer folders) is followed first.
    files = {
        "pkg.py": "from alpha import run\n",
        "pkg/__init__.py": "from .beta import run\n",
        "alpha.py": "def run():\n    return 'alpha'\n",
        "pkg/beta.py": "def run():\n    return 'beta'\n",
    }
    assert _choose(files, "pkg.run") == ("alpha.py", "alpha.run")


def test_a_re_export_by_an_exact_module_that_leads_to_a_broken_file_is_blamed() -> None:
    # The module the name spells out imports `run` from a file that does not parse: that is the
    # file meant, as a broken exact match would be, even though a suffix match exists.
    snapshot = index(
        {
            "pkg/__init__.py": "from .impl import run\n",
            "pkg/impl.py": "def run(:\n    pass\n",
            "vendor/pkg.py": "def run():\n    return 'vendored'\n",
        }
    )
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("pkg.run")
    assert (caught.value.path, caught.value.via) == ("pkg/impl.py", "pkg/__init__.py")


def test_a_suffix_re_export_leading_to_a_broken_file_does_not_hide_a_direct_suffix_match() -> None:
    snapshot = index(
        {
            "a/pkg/__init__.py": "from .impl import run\n",
            "a/pkg/impl.py": "def run(:\n    pass\n",
            "vendor/pkg.py": "def run():\n    return 'vendored'\n",
        }
    )
    assert snapshot.find("pkg.run").path == "vendor/pkg.py"
    suffix_only = {"a/pkg/__init__.py": "from .impl import run\n", "a/pkg/impl.py": "def run(:\n    pass\n"}
    with pytest.raises(UnparsableSource) as caught:
        index(suffix_only).find("pkg.run")
    assert (caught.value.path, caught.value.via) == ("a/pkg/impl.py", "a/pkg/__init__.py")


def test_re_exports_from_a_suffix_module() -> None:
    # A monorepo: the package is not under a source root, so only a suffix names it.
    snapshot = index(
        {
            "packages/client/httpx/__init__.py": "from ._client import Client\n",
            "packages/client/httpx/_client.py": CLIENT,
        }
    )
    assert snapshot.find("httpx.Client.send").path == "packages/client/httpx/_client.py"


def test_the_answer_does_not_depend_on_the_order_of_the_files() -> None:
    files = {
        "a/pkg/__init__.py": b"from .impl import run\n",
        "a/pkg/impl.py": b"def run():\n    return 'a'\n",
        "b/pkg/__init__.py": b"from .impl import run\n",
        "b/pkg/impl.py": b"def run():\n    return 'b'\n",
    }
    forward = index(files).find("pkg.run")
    backward = index(dict(reversed(list(files.items())))).find("pkg.run")
    assert forward == backward
    assert forward.path == "a/pkg/impl.py"


# -- errors -------------------------------------------------------------------------------------


def test_a_broken_defining_module_is_blamed_with_the_import_that_led_there() -> None:
    snapshot = index(
        {
            "httpx/__init__.py": "from ._client import Client\n",
            "httpx/_client.py": "class Client:\n    def send(self:\n",
        }
    )
    with pytest.raises(UnparsableSource) as caught:
        snapshot.find("httpx.Client.send")
    error = caught.value
    assert (error.path, error.via) == ("httpx/_client.py", "httpx/__init__.py")
    assert str(error) == (
        "httpx/_client.py does not parse as Python 3.11, so 'httpx.Client.send' (which httpx/__init__.py "
        "imports from there) cannot be read from it: line 2: '(' was never closed"
    )


def test_a_broken_module_that_does_not_define_the_name_is_not_blamed() -> None:
    snapshot = index({"pkg/__init__.py": "from .a import *\n", "pkg/a.py": "def other(:\n"})
    with pytest.raises(NameNotFound):
        snapshot.find("pkg.run")


def test_a_404_suggests_public_re_exported_names() -> None:
    snapshot = index(
        {
            "httpx/__init__.py": "from ._client import *\n",
            "httpx/_client.py": b'__all__ = ["Client"]\n' + CLIENT,
        }
    )
    with pytest.raises(NameNotFound) as caught:
        snapshot.find("httpx.Client.sned")
    assert caught.value.suggestions[0] == "httpx.Client.send"
    # The public name stands for the definition: its defining path is not listed beside it.
    assert "httpx._client.Client.send" not in caught.value.suggestions
    with pytest.raises(NameNotFound) as caught:
        snapshot.find("httpx.Clint")
    assert "httpx.Client" in caught.value.suggestions
    # Every suggestion resolves.
    for name in caught.value.suggestions:
        snapshot.find(name)


def test_a_stub_declaration_yields_to_the_implementation_its_module_imports() -> None:
    stub = "def define(maybe_cls=None): ...\ndef only_in_the_stub(): ...\n"
    snapshot = index(
        {
            "attr/__init__.py": "from ._next_gen import define\n",
            "attr/__init__.pyi": stub,
            "attr/_next_gen.py": "def define(maybe_cls=None):\n    return maybe_cls\n",
        }
    )
    assert where(snapshot.find("attr.define")) == ("attr/_next_gen.py", "attr._next_gen.define")
    # Where the `.py` leads nowhere, the stub is the answer.
    assert snapshot.find("attr.only_in_the_stub").path == "attr/__init__.pyi"


def test_a_direct_broken_file_names_no_import() -> None:
    with pytest.raises(UnparsableSource) as caught:
        index({"py2.py": "def old():\n    print 'hi'\n"}).find("py2.old")
    assert caught.value.via is None
    assert "imports" not in str(caught.value)
