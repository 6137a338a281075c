"""analyzer.uses: what a reviewed function uses from its repository, as text for the model."""

from __future__ import annotations

import multiprocessing

import pytest

from analyzer.locate import SnapshotIndex
from analyzer.parsing import ParseBudget, ParserPool
from analyzer.uses import MAX_ENTRIES, MAX_SOURCE_CHARS, uses_of
from review_contract import MAX_CONTEXT_CHARS
from tests.analyzer.helpers import index, src

SHOP = {
    "shop/__init__.py": b"",
    "shop/pricing.py": src('''
        from decimal import Decimal

        TAX_RATE = Decimal("0.2")


        def price_of(item: "Item", *, currency: str = "EUR") -> Decimal:
            """The item's price in `currency`,
            taxes included.

            The rest of the docstring is not shown.
            """
            return item.price * (1 + TAX_RATE)


        async def fetch_rates(*names: str) -> dict[str, Decimal]:
            return {}
    '''),
    "shop/models.py": src('''
        from dataclasses import dataclass, field


        @dataclass(frozen=True)
        class Item:
            """An item on sale.

            Not this line.
            """

            name: str
            price: Decimal
            tags: list[str] = field(default_factory=list)

            def label(self) -> str:
                return self.name


        class User:
            """Someone who buys."""

            def __init__(self, name: str, *, admin: bool = False) -> None:
                self.name = name
    '''),
    "shop/cart.py": src('''
        import os.path

        import requests
        from decimal import Decimal

        from . import pricing
        from .models import Item, User
        from .pricing import price_of

        LIMIT = 10
        GREETING: str = "hello"


        class Base:
            def save(self, force: bool = False) -> None:
                """Save it."""


        class Cart(Base):
            """A shopping cart."""

            items: list[Item]
            discount: Decimal
            MAX = 5

            def __init__(self, owner: User) -> None:
                self.owner = owner
                self.paid: bool = False

            @property
            def count(self) -> int:
                return len(self.items)

            def total(self) -> Decimal:
                if self.count > LIMIT or self.count > self.MAX:
                    requests.get(os.path.join("a", "b"))
                total = sum(price_of(item) for item in self.items)
                self.save()
                return total * (1 - self.discount) * pricing.TAX_RATE

            def alone(self) -> int:
                return len([1, 2])
    '''),
}

TOTAL = '''\
# class Cart (shop/cart.py)
class Cart(Base):
    """A shopping cart."""
    items: list[Item]
    discount: Decimal
    MAX = 5
    def __init__(self, owner: User) -> None:
        self.owner = owner
        self.paid: bool
# from shop/cart.py
# Cart.count
@property
def count(self) -> int:
# Base.save
def save(self, force: bool = False) -> None:
    """Save it."""
LIMIT = 10
# from shop/pricing.py
def price_of(item: 'Item', *, currency: str = 'EUR') -> Decimal:
    """The item's price in `currency`, taxes included."""
TAX_RATE = Decimal('0.2')'''


def test_a_method_gets_its_class_its_callees_and_constants_grouped_by_file() -> None:
    snapshot = index(SHOP)
    assert uses_of(snapshot, snapshot.find("shop.cart.Cart.total")) == TOTAL


def test_a_cross_file_callee_shows_its_signature_and_first_docstring_paragraph() -> None:
    snapshot = index(SHOP)
    text = uses_of(snapshot, snapshot.find("shop.cart.Cart.total"))
    assert "# from shop/pricing.py\ndef price_of(item: 'Item', *, currency: str = 'EUR') -> Decimal:" in text
    assert "The rest of the docstring" not in text


def test_third_party_and_stdlib_names_are_left_out() -> None:
    snapshot = index(SHOP)
    text = uses_of(snapshot, snapshot.find("shop.cart.Cart.total"))
    for outside in ("requests", "os.path", "join", "Decimal(", "sum", "len"):
        assert outside not in text.replace("Decimal('0.2')", "")


def test_nothing_used_from_the_snapshot_is_an_empty_string() -> None:
    files: dict[str, bytes | str] = {
        "m.py": src("""
        import json

        def dump(data: dict) -> str:
            return json.dumps(data, indent=len(data))
    """)
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("m.dump")) == ""


def test_a_used_class_shows_its_header_docstring_attributes_and_init() -> None:
    files: dict[str, bytes | str] = {
        **SHOP,
        "shop/orders.py": src("""
            from shop.models import Item, User

            def order(user: User, name: str) -> Item:
                return Item(name=name, price=User(name).name)
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("shop.orders.order")) == (
        "# from shop/models.py\n"
        "class User:\n"
        '    """Someone who buys."""\n'
        "    def __init__(self, name: str, *, admin: bool = False) -> None: ...\n"
        "@dataclass(frozen=True)\n"
        "class Item:\n"
        '    """An item on sale."""\n'
        "    name: str\n"
        "    price: Decimal\n"
        "    tags: list[str] = field(default_factory=list)"
    )


def test_module_constants_of_its_own_module_and_of_imported_modules() -> None:
    files: dict[str, bytes | str] = {
        "pkg/__init__.py": b"",
        "pkg/settings.py": src("""
            TIMEOUT_S = 30.5  # seconds
            RETRIES: int = 3
            HUGE = [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
            ]
        """),
        "pkg/defaults.py": b"RATE = 2\n",
        "pkg/client.py": src("""
            from pkg import settings
            from pkg.settings import RETRIES as TRIES, HUGE
            from pkg.defaults import *

            LOCAL = {"a": 1}
            ALIAS = LOCAL

            def call() -> float:
                print(HUGE, ALIAS, LOCAL)
                return settings.TIMEOUT_S * TRIES * RATE
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("pkg.client.call")) == (
        "# from pkg/settings.py\n"
        "HUGE = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,...\n"
        "TIMEOUT_S = 30.5\n"
        "RETRIES: int = 3\n"
        "# from pkg/client.py\n"
        "ALIAS = LOCAL\n"
        "LOCAL = {'a': 1}\n"
        "# from pkg/defaults.py\n"
        "RATE = 2"
    )


def test_relative_imports_at_module_level_and_inside_the_function() -> None:
    files: dict[str, bytes | str] = {
        "app/__init__.py": b"",
        "app/util.py": "def slug(text: str) -> str:\n    return text\n",
        "app/api/__init__.py": b"",
        "app/api/helpers.py": "def check(x: int) -> bool:\n    return True\n",
        "app/api/views.py": src("""
            from ..util import slug
            from . import helpers

            def view(x: int) -> str:
                from .helpers import check as verify
                from .. import util
                import app.util as u2
                if helpers.check(x) and verify(x):
                    return slug(str(x)) + util.slug("a") + u2.slug("b")
                return ""
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("app.api.views.view")) == (
        "# from app/api/helpers.py\n"
        "def check(x: int) -> bool:\n"
        "# from app/util.py\n"
        "def slug(text: str) -> str:"
    )


def test_the_budget_keeps_whole_entries_from_the_first() -> None:
    snapshot = index(SHOP)
    found = snapshot.find("shop.cart.Cart.total")
    whole = uses_of(snapshot, found)
    # Around every line end (where an entry may end), and a sample in between.
    ends = [i for i, char in enumerate(whole) if char == "\n"] + [len(whole)]
    tried = {n for end in ends for n in (end - 1, end, end + 1)} | set(range(0, len(whole), 7))
    for max_chars in sorted(tried):
        text = uses_of(snapshot, found, max_chars=max_chars)
        assert len(text) <= max_chars
        assert whole.startswith(text)
        # Cut only where an entry ends: before a `# ...` line, a definition, or a constant.
        rest = whole[len(text) :]
        assert rest == "" or rest.startswith("\n" if text else "# class")
        if text and rest:
            following = rest[1:]
            assert following.startswith(("# ", "@", "def ", "LIMIT", "TAX_RATE")), following[:30]
    assert uses_of(snapshot, found, max_chars=len(whole)) == whole
    assert uses_of(snapshot, found, max_chars=-5) == ""


def test_at_most_max_entries() -> None:
    helpers = "".join(f"def helper_{i}(x: int) -> int:\n    return x\n\n" for i in range(60))
    calls = "".join(f"    helper_{i}(1)\n" for i in range(60))
    snapshot = index({"many.py": helpers + "def main() -> None:\n" + calls})
    text = uses_of(snapshot, snapshot.find("many.main"))
    assert text.count("def helper_") == MAX_ENTRIES
    assert "helper_29(" in text
    assert "helper_30(" not in text


def test_a_callee_in_a_file_that_does_not_parse_is_skipped() -> None:
    files: dict[str, bytes | str] = {
        "pkg/__init__.py": b"",
        "pkg/broken.py": "def broken(:\n",
        "pkg/latin.py": b"def latin():\n    return '\xe9'\n",  # not UTF-8, no cookie
        "pkg/good.py": "def good() -> int:\n    return 1\n",
        "pkg/main.py": src("""
            from pkg.broken import broken
            from pkg.latin import latin
            from pkg.good import good

            def main():
                return broken() + latin() + good()
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("pkg.main.main")) == "# from pkg/good.py\ndef good() -> int:"


def test_a_file_the_parser_refuses_is_skipped_and_never_parsed_here() -> None:
    big = "def big():\n    return 1\n" + "# padding\n" * 200
    files: dict[str, bytes] = {
        "big.py": big.encode(),
        "small.py": b"def small():\n    return 2\n",
        "main.py": src("""
            from big import big
            from small import small

            def main():
                return big() + small()
        """),
    }
    pool = ParserPool(ParseBudget(max_bytes=1000, cpu_s=30, memory_bytes=2_000_000_000))
    try:
        snapshot = SnapshotIndex(files, "owner/project", parse=pool.parse)
        assert uses_of(snapshot, snapshot.find("main.main")) == "# from small.py\ndef small():"
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


def test_the_output_is_the_same_for_any_order_of_files_and_every_run() -> None:
    first = index(SHOP)
    again = index(dict(reversed(list(SHOP.items()))))
    texts = {uses_of(s, s.find("shop.cart.Cart.total")) for s in (first, again, first)}
    assert texts == {TOTAL}


def test_recursion_two_names_for_one_def_star_imports_and_getattr_chains() -> None:
    files: dict[str, bytes | str] = {
        "pkg/__init__.py": b"",
        "pkg/tools.py": src("""
            __all__ = ["tool"]

            def tool(x):
                '''A tool.'''
                return x

            other = tool
        """),
        "pkg/star.py": src("""
            from pkg.tools import *
            from pkg.tools import tool as same, other
            from pkg import tools
            from nowhere import *

            def walk(node, depth=0):
                getattr(getattr(node, "a"), "b")().c.d.e.f()
                tool(same(other(tools.tool(node))))
                (lambda: node)().x
                return walk(node.child, depth + 1)
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("pkg.star.walk")) == (
        '# from pkg/tools.py\ndef tool(x):\n    """A tool."""'
    )


def test_self_methods_come_from_the_class_and_its_bases_in_other_files() -> None:
    files: dict[str, bytes | str] = {
        "pkg/__init__.py": b"",
        "pkg/base.py": src("""
            class Root:
                def close(self) -> None:
                    '''Closes it.'''

            class Base(Root):
                limit: int = 3

                async def open(self, timeout: float = 1.0) -> bool:
                    return True
        """),
        "pkg/child.py": src("""
            from typing import Generic, TypeVar
            from pkg.base import Base

            T = TypeVar("T")

            class Child(Base, Generic[T]):
                def run(self) -> None:
                    self.open()
                    self.close()
                    super().open()
                    self.missing()
                    type(self).open
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("pkg.child.Child.run")) == (
        "# class Child (pkg/child.py)\n"
        "class Child(Base, Generic[T]):\n"
        "# from pkg/base.py\n"
        "# Base.open\n"
        "async def open(self, timeout: float = 1.0) -> bool:\n"
        "# Root.close\n"
        "def close(self) -> None:\n"
        '    """Closes it."""'
    )


def test_a_static_method_has_no_self_and_init_shows_no_attributes_of_its_own() -> None:
    files: dict[str, bytes | str] = {
        "m.py": src("""
            def helper():
                pass

            class K:
                size: int

                @overload
                def __init__(self) -> None: ...
                @overload
                def __init__(self, size: str) -> None: ...
                def __init__(self, size: int) -> None:
                    self.size = size
                    self.other = helper()

                @staticmethod
                def make(self):
                    return self.helper
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("m.K.__init__")) == (
        "# class K (m.py)\nclass K:\n    size: int\n# from m.py\ndef helper():"
    )
    # `self` of a static method is a parameter like any other: nothing of the class is looked up.
    assert uses_of(snapshot, snapshot.find("m.K.make")) == (
        "# class K (m.py)\n"
        "class K:\n"
        "    size: int\n"
        "    def __init__(self, size: int) -> None:\n"
        "        self.size = size\n"
        "        self.other = helper()"
    )


def test_a_nested_class_method_and_a_class_under_review() -> None:
    files: dict[str, bytes | str] = {
        "m.py": src("""
            LIMIT = 1

            def check() -> None: ...

            class Outer:
                class Inner:
                    x: int

                    def go(self):
                        return check() or LIMIT

                def other(self):
                    pass

            class Whole(Outer):
                flag = LIMIT
                def m(self):
                    check()
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("m.Outer.Inner.go")) == (
        "# class Outer.Inner (m.py)\nclass Inner:\n    x: int\n# from m.py\ndef check() -> None:\nLIMIT = 1"
    )
    assert uses_of(snapshot, snapshot.find("m.Whole")) == (
        "# from m.py\nclass Outer:\ndef check() -> None:\nLIMIT = 1"
    )


def test_overloads_decorators_and_long_defaults_are_shown_briefly() -> None:
    long_default = "[" + ", ".join(str(i) for i in range(100)) + "]"
    files: dict[str, bytes | str] = {
        "lib.py": src(f'''
            import functools
            from typing import overload

            @overload
            def conv(x: int) -> int: ...
            @overload
            def conv(x: str) -> str: ...
            def conv(x):
                return x

            @functools.cache
            def cached(values=None, *, table={long_default}, flag: bool = True):
                """Quotes \\""" inside, and a backslash \\\\ too\\""""
        '''),
        "main.py": "from lib import conv, cached\n\ndef main():\n    return conv(cached())\n",
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("main.main")) == (
        "# from lib.py\n"
        "@overload\n"
        "def conv(x: int) -> int:\n"
        "@overload\n"
        "def conv(x: str) -> str:\n"
        "def conv(x):\n"
        "@functools.cache\n"
        "def cached(values=None, *, table=..., flag: bool = True):\n"
        '    """Quotes \\"\\"\\" inside, and a backslash \\\\ too\\""""'
    )


def test_crlf_files_tabs_and_a_class_attribute_list_that_is_too_long() -> None:
    attributes = "".join(f"\tfield_{i}: int = {i}\r\n" for i in range(50))
    files: dict[str, bytes | str] = {
        "models.py": (
            "class Big:\r\n\t'''Big.'''\r\n" + attributes + "\tdef __init__(self):\r\n\t\tpass\r\n"
        ).encode(),
        "use.py": "from models import Big\r\n\r\ndef use():\r\n\treturn Big()\r\n",
    }
    snapshot = index(files)
    text = uses_of(snapshot, snapshot.find("use.use"))
    lines = text.split("\n")
    assert lines[:4] == ["# from models.py", "class Big:", '    """Big."""', "    field_0: int = 0"]
    assert "    field_39: int = 39" in lines
    assert "    field_40: int = 40" not in lines
    assert lines[-2:] == ["    # ... and 10 more attributes", "    def __init__(self): ..."]
    assert "\r" not in text


def test_a_huge_or_broken_function_gets_no_context() -> None:
    body = "    helper()\n" * (MAX_SOURCE_CHARS // 12)
    files: dict[str, bytes | str] = {
        "m.py": "def helper():\n    pass\n\ndef huge():\n" + body,
        "n.py": "def helper():\n    pass\n\ndef fine():\n    helper()\n",
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("m.huge")) == ""
    fine = snapshot.find("n.fine")
    # A FoundFunction whose source no longer parses (a caller's mistake): nothing, no error.
    broken = type(fine)(
        qualified_name=fine.qualified_name,
        path=fine.path,
        source="def fine(:\n",
        start_line=fine.start_line,
        end_line=fine.end_line,
    )
    assert uses_of(snapshot, broken) == ""
    assert uses_of(snapshot, fine) == "# from n.py\ndef helper():"


def test_a_deeply_nested_expression_and_a_hostile_constant_do_not_crash() -> None:
    deep = " + ".join(["LIMIT"] * 2000)
    files: dict[str, bytes | str] = {
        "m.py": src("""
            LIMIT = ((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))
            OPEN = (
            """)
        + ("    1,\n" * 2000).encode()
        + src(f"""
            )
            def f():
                return {deep} + OPEN
        """),
    }
    snapshot = index(files)
    text = uses_of(snapshot, snapshot.find("m.f"))
    assert text == "# from m.py\nLIMIT = 1\nOPEN = ("


def test_the_default_budget_is_the_contract_s() -> None:
    helpers = "".join(
        f"def helper_{i}(x: int) -> int:\n    '''{'word ' * 60}'''\n    return x\n\n" for i in range(40)
    )
    calls = "".join(f"    helper_{i}(1)\n" for i in range(40))
    snapshot = index({"many.py": helpers + "def main() -> None:\n" + calls})
    found = snapshot.find("many.main")
    assert len(uses_of(snapshot, found)) <= MAX_CONTEXT_CHARS
    small = uses_of(snapshot, found, max_chars=1000)
    assert 0 < len(small) <= 1000
    assert small.count("def helper_") == small.count('"""') // 2


@pytest.mark.parametrize("name", ["m.f", "m.C.g"])
def test_names_shadowed_by_locals_are_not_looked_up(name: str) -> None:
    files: dict[str, bytes | str] = {
        "m.py": src("""
            def helper(): ...
            CONST = 1

            def f(helper, *args, **kwargs):
                CONST = 2
                for item in args:
                    try:
                        pass
                    except ValueError as error:
                        print(error)
                return helper() + CONST + [x for x in args][0]

            class C:
                def g(self, helper=None):
                    match helper:
                        case {"a": CONST, **rest}:
                            return CONST, rest
        """),
    }
    snapshot = index(files)
    text = uses_of(snapshot, snapshot.find(name))
    assert "helper" not in text
    assert "CONST" not in text


def test_signatures_keep_every_kind_of_parameter_as_pep_8_writes_them() -> None:
    files = {
        "lib.py": src("""
            def every(a, b: int = 1, /, c=2, *args: str, d, e: bool = False, **kw: int) -> None: ...
            def bare(a, *, b): ...
            def only(a, /): ...
            async def nothing(): ...
        """),
        "main.py": src("""
            from lib import *

            async def main():
                every(1, d=2)
                bare(1, b=2)
                only(1)
                await nothing()
        """),
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("main.main")) == (
        "# from lib.py\n"
        "def every(a, b: int = 1, /, c=2, *args: str, d, e: bool = False, **kw: int) -> None:\n"
        "def bare(a, *, b):\n"
        "def only(a, /):\n"
        "async def nothing():"
    )


def test_a_callee_too_deeply_nested_to_render_is_left_out_and_the_rest_shown() -> None:
    deep = "+".join(["1"] * 2000)
    files = {
        "lib.py": f"def deep(x={deep}):\n    pass\n\ndef ok():\n    pass\n",
        "main.py": "from lib import deep, ok\n\ndef main():\n    deep()\n    ok()\n",
    }
    snapshot = index(files)
    assert uses_of(snapshot, snapshot.find("main.main")) == "# from lib.py\ndef ok():"
