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
# About the file, not a function: ruff reports them at line 1, which is inside whichever function
# starts there (a module without a docstring whose first line is a def). A function's review, or
# a scan of its functions, does not take the module's faults for the function's.
MODULE_SCOPED = frozenset(
    {"D100", "D104", "CPY001", "INP001", "N999", "A005", *(f"EXE00{n}" for n in range(1, 6))}
)
# Never said in a repository: RUF100 because its noqa comments name the project's own rule set,
# ruff version and plugins; the module's own findings because they are not the function's.
NEVER_IN_CONTEXT = frozenset({"RUF100", *MODULE_SCOPED})
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
        "Do not change the collection the loop iterates over; iterate over a copy (list(...)) instead.",
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


# ruff's messages that read as a label rather than a sentence ("Extracting value from dictionary
# without calling `.items()`"), worded as a reviewer says them. The priority is the family's, as
# for any rule without its own entry. tests/gateway/test_wording.py finds the rules still missing.
_WORDED: dict[str, str] = {
    "ARG005": "Remove or use the unused lambda argument {names}.",
    "ASYNC250": "input() blocks the event loop in an async function; read input in a thread.",
    "B014": "Remove the duplicate exception from the except clause.",
    "B025": "Remove the except clause that catches {names} a second time: only the first one runs.",
    "B911": "Pass strict= to itertools.batched so an incomplete last batch is a decision, not a surprise.",
    "B912": "Pass strict=True to map so iterables of different lengths raise instead of being cut short.",
    "C400": "Use a list comprehension instead of list() around a generator.",
    "C401": "Use a set comprehension instead of set() around a generator.",
    "C402": "Use a dict comprehension instead of dict() around a generator.",
    "C403": "Use a set comprehension instead of set() around a list comprehension.",
    "C404": "Use a dict comprehension instead of dict() around a list comprehension.",
    "C405": "Write a set literal instead of set() around a list or tuple.",
    "C406": "Write a dict literal instead of dict() around a list or tuple.",
    "C411": "Remove the list() call around the list comprehension.",
    "C413": "Remove the call around sorted(): it already returns a new list.",
    "C414": "Remove the inner call: the outer one already makes a new collection.",
    "C415": "Do not reverse the iterable before the call: the order does not matter to it.",
    "C417": "Use a comprehension or generator instead of map() with a lambda.",
    "C419": "Pass a generator to any() or all() instead of a comprehension, so they can stop early.",
    "DTZ007": "Include %z in the strptime format so the datetime has a time zone.",
    "E701": "Put the statement after the colon on its own line.",
    "E702": "Put each statement on its own line instead of joining them with a semicolon.",
    "E703": "Remove the semicolon at the end of the statement.",
    "E742": "Rename the ambiguous class name {names} (l, O and I look like 1 and 0).",
    "E743": "Rename the ambiguous function name {names} (l, O and I look like 1 and 0).",
    "F406": "Move the star import to module level: Python allows it nowhere else.",
    "F502": "The %-format string names its placeholders: pass a mapping, not a sequence.",
    "F503": "The %-format string has positional placeholders: pass a sequence, not a mapping.",
    "F541": "Remove the f prefix from the string: it has no placeholders.",
    "F621": "The starred assignment has too many targets for Python to compile.",
    "F622": "Use one starred target in the assignment: two do not compile.",
    "F701": "break is only allowed inside a loop.",
    "F702": "continue is only allowed inside a loop.",
    "F704": "This statement is only allowed inside a function.",
    "F707": "Put the bare except last: the handlers after it can never run.",
    "F722": "Fix the syntax of the string annotation.",
    "FURB157": "Pass the plain value to Decimal instead of a verbose expression.",
    "FURB162": "Parse the trailing Z directly instead of replacing it with a zero offset.",
    "FURB164": "Construct the value directly instead of through the verbose from_ method.",
    "FURB171": "Compare with == instead of testing membership in a one-item container.",
    "LOG004": "Call .exception() only inside an except block; elsewhere use .error().",
    "LOG014": "Pass exc_info= only inside an except block, where there is an exception to log.",
    "LOG015": "Log through a named logger (logging.getLogger(__name__)), not the root logger.",
    "N811": "Import the constant {names} under a constant name.",
    "N812": "Import the lowercase name {names} under a lowercase name.",
    "N813": "Keep the CamelCase name {names} in CamelCase when importing it.",
    "N814": "Import the CamelCase name {names} under a CamelCase name, not as a constant.",
    "N817": "Import the CamelCase name {names} under a name that reads, not as an acronym.",
    "PERF203": "Move the try-except out of the loop: it costs time on every iteration.",
    "PIE800": "Remove the unnecessary ** unpacking of the dict literal.",
    "PIE804": "Pass the keyword arguments directly instead of unpacking a dict literal.",
    "PIE808": "Remove the start argument 0 from range: it is the default.",
    "PLC0206": "Iterate over the dictionary's .items() instead of looking each value up by its key.",
    "PLE0101": "Do not return a value from __init__: it must return None.",
    "PLE0116": "continue is not allowed in a finally clause before Python 3.8; restructure the loop.",
    "PLE0241": "Remove the duplicate base class.",
    "PLE1205": "The logging call passes more arguments than its format string uses.",
    "PLE1206": "The logging call passes fewer arguments than its format string needs.",
    "PLE1300": "Fix the format string: it holds a format character Python does not support.",
    "PLE1507": "Pass os.getenv a string as the variable's name.",
    "PLR0124": "The value is compared with itself; compare it with what was meant.",
    "PLR0133": "Two constants are compared; the result never changes.",
    "PLR1704": "Do not reuse the argument name {names} for a local variable.",
    "PLR1708": "Return from the generator instead of raising StopIteration (it becomes a RuntimeError).",
    "PLR1711": "Remove the useless return at the end of the function.",
    "PLR1733": "Use the value the loop already has instead of looking it up in the dictionary again.",
    "PLR1736": "Use the value enumerate() already gives instead of indexing the list again.",
    "PLR2044": "Remove the empty comment.",
    "PLW0120": "Remove the else of the loop: without a break it always runs; dedent its body.",
    "PLW0127": "Remove the assignment of {names} to itself.",
    "PLW0128": "Do not assign {names} twice in one assignment.",
    "PLW0642": "Do not reassign self or cls inside the method; use another name.",
    "PLW1507": "Use os.environ.copy(): copy.copy(os.environ) still writes to the real environment.",
    "PLW1508": "Give os.getenv a string or None as its default.",
    "RUF019": "Use dict.get instead of checking for the key before reading it.",
    "RUF033": "Do not give __post_init__ argument defaults; use InitVar fields with defaults.",
    "RUF034": "Remove the if-else: both branches give the same value.",
    "RUF037": "Create the deque without the empty iterable.",
    "RUF041": "Flatten the nested Literal into one.",
    "RUF060": "Remove the membership test: the collection is empty, so the result never changes.",
    "RUF064": "Write the file mode in octal (0o644), as the permission bits are meant.",
    "RUF102": "Fix the rule code in the noqa comment: ruff has no such rule.",
    "RUF103": "Fix the suppression comment: ruff cannot read it.",
    "RUF104": "Close the ruff: disable comment with a matching ruff: enable.",
    "RUF200": "Fix pyproject.toml: it does not parse.",
    "S103": "Do not make the file world-writable or executable with os.chmod; grant only what is needed.",
    "S503": "Default to a secure TLS version, not an insecure SSL protocol.",
    "S507": "Do not let paramiko trust unknown host keys automatically; verify them.",
    "S604": "Avoid shell=True: pass the call an argument list (shell injection).",
    "S606": "Start the process with an argument list and the full path of its executable.",
    "S609": "Do not pass * to a shell command: file names can inject options (wildcard injection).",
    "SIM101": "Merge the isinstance calls into one with a tuple of types.",
    "TRY401": "Remove the exception from the log message: log.exception already records it.",
}
RULES.update({code: Rule(rule_for(code).priority, code.lower(), text) for code, text in _WORDED.items()})
