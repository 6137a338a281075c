"""Which ruff rules judge a function, how important each finding is, and how it is worded.

Two ways a function is checked (gateway/checks.py):
- In its module, when the analyzer sends the module (`review_context`): the repository's own
  ruff configuration decides style; where it has none, `SELECT` (our default) applies. Findings
  of bugs and security (`CORE`) are reported whatever the configuration selects, unless it
  ignores that exact rule.
- Cut out of its module (`POST /analyze`): `SELECT` less `IGNORED`, the rules that misfire on a
  function whose imports, names and class are gone (IGNORED says why for each).

Our default is what a senior reviewer would sign: bugs, security, error handling, async,
resources and performance first; missing type hints and docstrings said once each; the rules in
`PEDANTIC` are off (each with why). A finding with a wording here gets that sentence; any other
gets ruff's own message, made plain (`plain_message`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from review_contract import Severity

# Order of importance (lower first); the model's suggestions are placed between these tiers
# (suggestions.py). Bugs and security first, then error handling, then hints, docs and style.
SYNTAX = 0
SECURITY = 10
CORRECTNESS = 15
ERRORS = 20
TYPES = 30
DOCS = 32
PERFORMANCE = 35
STYLE = 40
# Findings that are usually noise on real code: kept, but after everything else.
MINOR = 48

# flake8-annotations, -async, -bandit, -blind-except, -bugbear, -builtins, -comprehensions,
# -datetimez, -debugger, -logging, -pie, -print, -raise, -return, -simplify, -unused-arguments,
# eradicate, mccabe, pep8-naming, Perflint, pycodestyle's E7 statements, pydocstyle, Pyflakes,
# Pylint, refurb, Ruff's own and tryceratops.
SELECT = "A,ANN,ARG,ASYNC,B,BLE,C4,C90,D,DTZ,E7,ERA,F,FURB,LOG,N,PERF,PIE,PL,RET,RSE,RUF,S,SIM,T10,T20,TRY"
# Preview rules, each picked by name (explicit-preview-rules): a defect they find is worth it.
PREVIEW = ("B909", "PLW1514")
# Bugs, security, resource and async pitfalls that hold in any codebase: reported in a repository
# whatever its own selection, unless it ignores the exact rule (its `ignore = ["S307"]` is a
# decision; a selection that omits "S" is usually only ruff's default). Opinionated members of
# these families (assert, subprocess audits, zip(strict=), md5/sha1 often used for checksums and
# protocols such as HTTP digest auth) are left to the repository's choice.
CORE = (
    *("F63", "F7", "F82", "PLE", "ASYNC2", "T10", "E722", "RUF006", "SIM115"),
    *("S102", "S307", "S301", "S506", "S602", "S605", "S608", "S113", "S501", "S202", "S701"),
    *("S313", "S314", "S315", "S316", "S317", "S318", "S319"),
    *("B005", "B006", "B012", "B015", "B017", "B018", "B019", "B020", "B023", "B025", "B033", "B909"),
)
# Never said in a repository: its noqa comments name its own rule set, ruff version and plugins.
NEVER_IN_CONTEXT = frozenset({"RUF100"})
# What ruff itself selects when a configuration selects nothing.
RUFF_DEFAULT = ("E4", "E7", "E9", "F")
# Rules that misfire on a function cut out of its module. In its module they judge right again.
IGNORED: dict[str, str] = {
    "F821": "names defined elsewhere in the module (imports, globals, other functions)",
    "F822": "__all__ names defined elsewhere in the module",
    "F811": "@overload variants sent together, without the `overload` import",
    "PLE0117": "nonlocal of an enclosing function that was cut away",
    "D100": "the module's docstring: the module is not there",
    "D104": "the package's docstring: the package is not there",
    "N999": "the module's file name is ours, not the project's",
    "A005": "the module's file name is ours, not the project's",
    "RUF100": "noqa comments name the project's own rule set",
}
# True, but no senior reviewer would write it on working code: off in our default (a repository
# that selects them gets them). Measured on the clean corpus of `bench review --clean`.
PEDANTIC: dict[str, str] = {
    **dict.fromkeys(
        ("D2", "D3", "D4"), "docstring layout (blank lines, first-line form, punctuation, sections)"
    ),
    "D105": "docstrings of magic methods: their meaning is the protocol's",
    "D107": "a docstring on __init__: the class's docstring says it",
    "D417": "every argument described in the docstring: layout",
    "ANN401": "typing.Any is a deliberate choice",
    "ANN204": "the return type of special methods (__init__ -> None): the protocol's",
    "TRY003": "long messages in the exception's raise: message style",
    "TRY300": "moving a return into try's else: layout",
    "EM": "exception messages in a variable first: message style",
    "PLC0415": "imports inside functions: usually deliberate (lazy, optional, cyclic)",
    "PLR0913": "too many arguments counts keyword-only ones: public APIs take many options",
    "PLR2004": "magic values: comparisons with small literals are clear as they are",
    "PLR6301": "a method that could be static: an interface decides",
    "N806": "a capitalised local variable is usually a class (Cls = type(self))",
    "N818": "exception names ending in Error: naming",
    **dict.fromkeys(("ARG002", "ARG003", "ARG004"), "unused arguments of methods: the interface decides"),
    "SIM108": "a conditional expression instead of if-else: taste",
    "SIM103": "returning the condition directly: taste",
    "RUF005": "unpacking instead of concatenation: taste",
    "RUF007": "itertools.pairwise instead of zip: taste",
    "RUF012": "ClassVar on mutable class attributes: typing pedantry",
    "RUF036": "None at the end of a union: order",
    "RUF022": "__all__ sorted: order",
    "RUF023": "__slots__ sorted: order",
    "RET505": "else after return: layout (a nested else-if is still said, as PLR5501)",
    "RET506": "else after raise: layout",
    "RET507": "else after continue: layout",
    "RET508": "else after break: layout",
    "N807": "a dunder name outside a class: PEP 562's module __getattr__ and factories of it",
    "N802": "a function named like a class: a factory that stands for one (a typing twin)",
    "ERA001": "commented-out code: examples and data in comments read as code",
    "PLR0917": "too many positional parameters: a published signature cannot change",
    "ASYNC109": "a timeout parameter on an async function: an API choice",
    "RSE102": "parentheses on a raised class: layout",
    "PLC1802": "len() as a condition: taste",
    "PLR1714": "merging comparisons: taste",
    "PLW0108": "a lambda that could be the function: taste",
    "FURB118": "operator module instead of a lambda: taste",
    "FURB140": "starmap instead of a comprehension: taste",
    "C408": "dict() instead of a literal: taste",
    "C416": "an unnecessary comprehension: taste",
    "S310": "auditing URL schemes: every URL-opening library would be flagged",
    "PIE790": "an unnecessary pass: layout",
    "PIE796": "unique enum values: deliberate aliases",
}
# Builtins whose names are everyday vocabulary of APIs (`id`, `type`, `format`...): a name like
# these shadows nothing a reader confuses, unlike `list`, `dict`, `str`, `len` or `open`.
SOFT_BUILTINS = frozenset(
    (
        "id",
        "type",
        "format",
        "input",
        "filter",
        "hash",
        "help",
        "vars",
        "dir",
        "object",
        "property",
        "compile",
        "license",
        "copyright",
        "credits",
        "exit",
        "quit",
        "iter",
        "next",
        "min",
        "max",
        "sum",
        "all",
        "any",
        "callable",
        "ascii",
        "bin",
        "oct",
        "hex",
        "round",
        "pow",
        "divmod",
    )
)
# Rules that say one concern: in one review, only the first of each group is said.
CONCERNS: dict[str, tuple[str, ...]] = {
    "complexity": ("C901", "PLR0912", "PLR0915", "PLR0911"),
    "arguments": ("PLR0917", "PLR0913"),
    "except": ("S110", "S112", "E722", "BLE001", "SIM105"),
    "undefined-name": ("F821", "ty/unresolved-reference"),
    "possibly-undefined": ("ty/possibly-unresolved-reference",),
}
CONFIG = (
    "lint.mccabe.max-complexity = 10",
    'lint.pydocstyle.convention = "google"',
    "lint.explicit-preview-rules = true",
)
# A rule selector of a repository's configuration, as ruff spells them ("E", "PLR09", "ALL").
SELECTOR = re.compile(r"ALL|[A-Z]{1,8}[0-9]{0,4}")


def concern_of(code: str) -> str | None:
    """The concern a rule shares with others (CONCERNS), or None."""
    for concern, codes in CONCERNS.items():
        if code in codes:
            return concern
    return None


def selector_match(code: str, selectors: tuple[str, ...] | list[str]) -> int:
    """How specific the most specific selector matching `code` is (its length; ALL is 0), or -1."""
    best = -1
    for selector in selectors:
        if selector == "ALL":
            best = max(best, 0)
        elif code.startswith(selector):
            best = max(best, len(selector))
    return best


def is_pedantic(code: str) -> bool:
    return selector_match(code, tuple(PEDANTIC)) >= 0


def severity_of(priority: int) -> Severity:
    """SARIF's level for a priority tier: bugs and security are errors, error handling and
    performance warnings, the rest notes."""
    if priority <= CORRECTNESS:
        return "error"
    if priority <= PERFORMANCE and priority not in (TYPES, DOCS):
        return "warning"
    return "note"


@dataclass(frozen=True)
class Rule:
    priority: int
    topic: str
    # `{names}` is replaced by the names the findings point at ("a, b and c").
    template: str | None = None
    # Where the name comes from: the first `backticked` word of ruff's message, the identifier at
    # the finding, or the parameter a default value belongs to.
    name_from: str = "message"


_ANN = Rule(TYPES, "types")
_DOC = Rule(DOCS, "docstring", "Add a docstring to {names}: what it does, takes and returns.", "location")
_SECRET = Rule(SECURITY, "secret", "Do not hard-code passwords or secrets; read them from configuration.")
_XML = Rule(
    SECURITY,
    "xml",
    "Parse untrusted XML with defusedxml: the standard parsers allow entity-expansion attacks.",
)
_UNUSED_ARG = Rule(STYLE, "unused-argument", "Remove or use the unused argument {names}.")
_BUILTIN = Rule(STYLE, "builtin", "Rename {names} to avoid shadowing a Python builtin.")
_ASYNC_PROCESS = Rule(
    CORRECTNESS,
    "async-blocking",
    "This subprocess call blocks the event loop in an async function; use asyncio.create_subprocess_exec.",
)
_ASYNC_HTTP = Rule(
    CORRECTNESS,
    "async-blocking",
    "This HTTP call blocks the event loop in an async function; "
    "use an async client (httpx.AsyncClient, aiohttp).",
)
_SILENCED = "Do not silence exceptions with except: {what}; handle them or log them."

RULES: dict[str, Rule] = {
    "invalid-syntax": Rule(SYNTAX, "syntax"),
    **dict.fromkeys(("ANN001", "ANN002", "ANN003", "ANN201", "ANN202", "ANN204", "ANN205", "ANN206"), _ANN),
    "D101": Rule(DOCS, "docstring", "Add a docstring to the class {names}.", "location"),
    "D102": _DOC,
    "D103": _DOC,
    "D419": Rule(DOCS, "docstring", "Fill in the empty docstring."),
    # security
    "S102": Rule(SECURITY, "exec", "Avoid exec: it runs arbitrary code."),
    "S307": Rule(SECURITY, "eval", "Do not eval data: use ast.literal_eval or explicit parsing."),
    "S301": Rule(
        SECURITY, "pickle", "Do not unpickle untrusted data (it can run code); use JSON or similar."
    ),
    "S506": Rule(SECURITY, "yaml", "Use yaml.safe_load instead of yaml.load."),
    "S602": Rule(SECURITY, "shell", "Avoid shell=True: pass subprocess an argument list (shell injection)."),
    "S605": Rule(
        SECURITY, "shell", "Avoid os.system: run subprocess with an argument list (shell injection)."
    ),
    "S608": Rule(SECURITY, "sql", "Build SQL with query parameters, not string formatting (SQL injection)."),
    "S324": Rule(SECURITY, "hash", "Use a strong hash such as hashlib.sha256 instead of md5 or sha1."),
    "S113": Rule(SECURITY, "timeout", "Pass a timeout to the requests call so it cannot hang forever."),
    "S105": _SECRET,
    "S106": _SECRET,
    "S107": _SECRET,
    "S311": Rule(
        SECURITY,
        "random",
        "Use the secrets module for tokens and passwords: "
        "random is predictable, not cryptographically secure.",
    ),
    "S306": Rule(
        SECURITY,
        "tempfile",
        "Use tempfile.mkstemp or NamedTemporaryFile instead of mktemp: "
        "another process can take the name first.",
    ),
    "S108": Rule(SECURITY, "tempfile", "Do not hard-code a /tmp path; create temporary files with tempfile."),
    "S501": Rule(
        SECURITY,
        "tls",
        "Do not turn off certificate verification (verify=False): it allows man-in-the-middle attacks.",
    ),
    "S202": Rule(
        SECURITY,
        "archive",
        "Pass filter='data' to extractall: a crafted archive can write outside the target folder.",
    ),
    **dict.fromkeys(("S313", "S314", "S315", "S316", "S317", "S318", "S319", "S320"), _XML),
    "S701": Rule(
        SECURITY, "xss", "Turn jinja2's autoescape on (select_autoescape) so values cannot inject HTML."
    ),
    "S104": Rule(
        SECURITY, "bind", "Binding to 0.0.0.0 exposes the service on every interface; bind one address."
    ),
    "S101": Rule(
        ERRORS,
        "assert",
        "Do not use assert to check input or state: python -O removes it; raise an exception instead.",
    ),
    "S603": Rule(MINOR, "subprocess", "Make sure no untrusted input reaches the subprocess arguments."),
    "S607": Rule(
        MINOR, "subprocess", "Start the process by the full path of its executable, not a PATH lookup."
    ),
    # bugs
    "B006": Rule(
        CORRECTNESS,
        "mutable-default",
        "Do not use a mutable default for {names}: default to None and create it inside the function.",
        "default",
    ),
    "B008": Rule(
        CORRECTNESS,
        "call-default",
        "Do not call functions in the default of {names}: it runs once, at definition time.",
        "default",
    ),
    "B023": Rule(
        CORRECTNESS,
        "closure",
        "The inner function captures the loop variable {names}; bind it as a default argument.",
    ),
    "B005": Rule(
        CORRECTNESS,
        "strip",
        "strip with several characters removes any of those characters, not a suffix; "
        "use removesuffix or removeprefix.",
    ),
    "B011": Rule(ERRORS, "assert", "Do not assert False: python -O removes it; raise an exception instead."),
    "B015": Rule(CORRECTNESS, "useless", "The comparison's result is unused: assert it, or use it in an if."),
    "B018": Rule(CORRECTNESS, "useless", "Remove the useless expression, or use its value."),
    "B019": Rule(
        CORRECTNESS,
        "cache",
        "functools.lru_cache on a method keeps every instance alive (a memory leak); "
        "cache a function instead.",
    ),
    "B905": Rule(
        CORRECTNESS,
        "zip",
        "Pass strict=True to zip so inputs of different lengths raise instead of being silently truncated.",
    ),
    "B909": Rule(
        CORRECTNESS,
        "loop-mutation",
        "Do not change {names} while iterating over it; iterate over a copy (list(...)) instead.",
    ),
    "B904": Rule(CORRECTNESS, "raise-from", "Inside except, raise with 'from err' to keep the cause."),
    "B012": Rule(CORRECTNESS, "finally", "Do not return, break or continue in finally: it hides exceptions."),
    "RUF006": Rule(
        CORRECTNESS,
        "task",
        "Keep a reference to the task create_task returns and await it: a task nobody holds can vanish.",
    ),
    "DTZ005": Rule(
        CORRECTNESS,
        "timezone",
        "Pass a time zone to datetime.now (e.g. datetime.UTC): naive datetimes compare wrongly across zones.",
    ),
    "E711": Rule(CORRECTNESS, "none-compare", "Compare with None using 'is' or 'is not', not == or !=."),
    "E712": Rule(CORRECTNESS, "bool-compare", "Do not compare with True or False using ==; test the value."),
    "E721": Rule(CORRECTNESS, "type-compare", "Use isinstance() instead of comparing types."),
    "F632": Rule(CORRECTNESS, "is-literal", "Use == to compare with literals, not 'is' (identity)."),
    "PLW0603": Rule(CORRECTNESS, "global", "Avoid the global statement for {names}; pass values in and out."),
    "PLW2901": Rule(CORRECTNESS, "loop-var", "Do not overwrite the loop variable {names} inside the loop."),
    "PLW1514": Rule(
        CORRECTNESS, "encoding", "Pass encoding= to open: the default depends on the machine's locale."
    ),
    "SIM115": Rule(CORRECTNESS, "open", "Open files in a with statement so they are always closed."),
    "ASYNC251": Rule(
        CORRECTNESS,
        "async-blocking",
        "time.sleep blocks the event loop in an async function; use await asyncio.sleep().",
    ),
    **dict.fromkeys(("ASYNC210", "ASYNC211", "ASYNC212"), _ASYNC_HTTP),
    **dict.fromkeys(("ASYNC220", "ASYNC221", "ASYNC222"), _ASYNC_PROCESS),
    "ASYNC230": Rule(
        CORRECTNESS,
        "async-blocking",
        "open blocks the event loop in an async function; use asyncio.to_thread, anyio or aiofiles.",
    ),
    # error handling
    "PLW1510": Rule(ERRORS, "check", "Pass check=True to subprocess.run so failures are not silent."),
    "E722": Rule(ERRORS, "except", "Replace the bare except with the specific exceptions you expect."),
    "BLE001": Rule(ERRORS, "except", "Catch specific exceptions instead of the broad {names}."),
    "S110": Rule(ERRORS, "silenced", _SILENCED.format(what="pass")),
    "S112": Rule(ERRORS, "silenced", _SILENCED.format(what="continue")),
    "TRY002": Rule(ERRORS, "raise-generic", "Raise a specific exception class, not a bare Exception."),
    "TRY201": Rule(ERRORS, "reraise", "Re-raise with a bare 'raise', not 'raise e', to keep the traceback."),
    "TRY400": Rule(
        ERRORS,
        "log-exception",
        "Inside except, log with log.exception, not log.error, to keep the traceback.",
    ),
    # complexity and style
    "C901": Rule(STYLE, "complexity", "{names} is too complex; split it into smaller functions.", "location"),
    "PLR0911": Rule(STYLE, "complexity", "{names} has too many return statements; simplify it.", "location"),
    "PLR0912": Rule(STYLE, "complexity", "{names} has too many branches; split it up.", "location"),
    "PLR0915": Rule(STYLE, "complexity", "{names} has too many statements; split it up.", "location"),
    "PLR0913": Rule(
        STYLE, "arguments", "{names} takes too many arguments; group related ones in an object.", "location"
    ),
    "ARG001": _UNUSED_ARG,
    "ARG002": _UNUSED_ARG,
    "F841": Rule(STYLE, "unused-variable", "Remove the unused local variable {names}."),
    "F401": Rule(STYLE, "unused-import", "Remove the unused import {names}."),
    "B007": Rule(STYLE, "unused-loop-var", "Rename the unused loop variable {names} to _."),
    "A001": _BUILTIN,
    "A002": _BUILTIN,
    "T201": Rule(STYLE, "print", "Remove the print call left in, or use logging."),
    "T203": Rule(STYLE, "print", "Remove the pprint call left in, or use logging."),
    "E731": Rule(STYLE, "lambda", "Use def instead of assigning a lambda to a name."),
    "E741": Rule(STYLE, "naming", "Rename the ambiguous name {names} (l, O and I look like 1 and 0)."),
    "N802": Rule(STYLE, "naming", "Rename the function {names} in snake_case."),
    "N803": Rule(STYLE, "naming", "Rename the argument {names} in snake_case."),
    "N806": Rule(STYLE, "naming", "Rename the variable {names} in snake_case."),
    "SIM102": Rule(STYLE, "simplify", "Merge the nested if statements into one."),
    "SIM108": Rule(STYLE, "simplify", "Use a conditional expression instead of the if-else assignment."),
    "SIM110": Rule(STYLE, "simplify", "Use any() or all() instead of the loop."),
    "SIM118": Rule(STYLE, "simplify", "Test 'key in d' instead of 'key in d.keys()'."),
    "RET504": Rule(
        STYLE, "simplify", "Return the expression directly instead of assigning it to {names} first."
    ),
    "RET505": Rule(STYLE, "simplify", "Remove the else after return and dedent its body."),
    "PERF401": Rule(PERFORMANCE, "simplify", "Use a list comprehension instead of appending in a loop."),
    "ERA001": Rule(STYLE, "dead-code", "Remove the commented-out code."),
    "PLR2004": Rule(MINOR, "magic-value", "Name the magic value {names} as a constant."),
    "TRY003": Rule(MINOR, "exception-message", "Put long exception messages in the exception class."),
}

# Priority of a rule without its own entry, by its family: the code's letters ("SIM", "PLW"),
# with the first digit where letters alone are ambiguous (T10 debugger / T20 print, C4 / C90).
_FAMILY_PRIORITY = {
    "S": SECURITY,
    "B": CORRECTNESS,
    "ASYNC": CORRECTNESS,
    "DTZ": CORRECTNESS,
    "PLE": CORRECTNESS,
    "PLW": CORRECTNESS,
    "F": CORRECTNESS,
    "T1": CORRECTNESS,
    "TRY": ERRORS,
    "BLE": ERRORS,
    "RSE": ERRORS,
    "LOG": ERRORS,
    "ANN": TYPES,
    "D": DOCS,
    "PERF": PERFORMANCE,
    "C4": PERFORMANCE,
}
_LETTERS = re.compile(r"[A-Z]+")
_BACKTICKED = re.compile(r"`([^`]*)`")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")


def rule_for(code: str) -> Rule:
    """The rule's entry, or one made for it: the family's priority, ruff's message as the words."""
    known = RULES.get(code)
    if known is not None:
        return known
    match = _LETTERS.match(code)
    letters = match.group(0) if match else code
    family = code[: len(letters) + 1] if letters in {"T", "C"} else letters
    return Rule(_FAMILY_PRIORITY.get(family, STYLE), code.lower())


def plain_message(message: str) -> str:
    """ruff's message as one plain sentence: names unquoted, code in single quotes, a capital and a stop."""

    def unquote(match: re.Match[str]) -> str:
        inner = match.group(1)
        return inner if _IDENTIFIER.fullmatch(inner) else f"'{inner}'"

    text = _BACKTICKED.sub(unquote, message).strip()
    text = re.sub(r"\s+", " ", text)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."
