"""Every finding the checks can emit reaches people as a sentence, not as ruff's raw label.

The rules that can be emitted are asked of ruff itself (`--show-settings` resolves the selection
as a run does): our default selection less PEDANTIC, and the CORE rules said in any repository,
less the rules IGNORED cut out of a module and NEVER_IN_CONTEXT. Each one's sentence is our
wording (gateway/rules.py) or ruff's message made plain, and ruff's message must then read as an
English sentence: an instruction, or a statement with a verb. "Extracting value from dictionary
without calling `.items()`" is neither, and fails here until it is worded.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from gateway.checks import RuffChecker
from gateway.rules import (
    CONFIG,
    CORE,
    IGNORED,
    NEVER_IN_CONTEXT,
    PEDANTIC,
    PREVIEW,
    RULES,
    SELECT,
    plain_message,
)

# The module's list of the rules and their wording is made once: its tests stay on one worker.
pytestmark = pytest.mark.xdist_group("wording")

# A sentence that starts with one of these tells the reader what to do.
_INSTRUCTION = re.compile(
    r"^(Use|Avoid|Replace|Remove|Prefer|Do|Don't|Pass|Rename|Add|Move|Consider|Merge|Return|Store|"
    r"Parenthesize|Create|Abstract|Instead|Call|Combine|Convert|Unpack|Simplify|Inline|Wrap|Import|"
    r"Make|Check|Iterate|Compare|Always|Never|Specify|Write|Define|Omit)\b"
)
# A statement: a finite verb or a participle that says what happened ("... is shadowing ...",
# "Use of exec detected"). Good enough to tell a sentence from a label; not a grammar.
_VERB = re.compile(
    r"\b(is|are|was|were|be|should|does|do|did|doesn't|cannot|can|can't|must|will|would|may|might|"
    r"has|have|contains|contain|uses|use|appears|overrides|imports|compares|expects|shadows|causes|"
    r"cause|allows|returns|raises|requires|prohibits|mixes|takes|leads|reverts|matches|iterates|"
    r"inherits|called|used|defined|passed|given|detected|found|missing|ignored|shadowed|"
    r"overwritten|assigned|repeated|annotated|referenced)\b",
    re.IGNORECASE,
)
# Said in the gateway's own words whatever ruff's message: one type-hint sentence for all of them.
_WORDED_BY_CODE = ("ANN",)


def _enabled(binary: str, folder: Path, select: tuple[str, ...], ignore: tuple[str, ...] = ()) -> set[str]:
    """The codes ruff enables for a run with this selection (as the checks run it: preview on,
    explicit preview rules only)."""
    (folder / "m.py").write_text("")
    argv = [binary, "check", "--isolated", "--show-settings", "--preview", "--select", ",".join(select)]
    if ignore:
        argv += ["--ignore", ",".join(ignore)]
    for setting in CONFIG:
        argv += ["--config", setting]
    shown = subprocess.run([*argv, "m.py"], cwd=folder, capture_output=True, text=True, check=True).stdout
    block = shown.split("linter.rules.enabled = [", 1)[1].split("\n]", 1)[0]
    return set(re.findall(r"\(([A-Z]+[0-9]+)\)", block))


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each rule the checks can emit -> ruff's message formats for it."""
    binary = RuffChecker().binary
    folder = tmp_path_factory.mktemp("wording")
    codes = _enabled(binary, folder, (SELECT, *PREVIEW), tuple(PEDANTIC)) | _enabled(binary, folder, CORE)
    codes -= set(IGNORED) | NEVER_IN_CONTEXT
    listed = json.loads(
        subprocess.run(
            [binary, "rule", "--all", "--output-format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    formats = {rule["code"]: rule["message_formats"] for rule in listed}
    return {code: formats[code] for code in sorted(codes)}


def reads_as_a_sentence(text: str) -> bool:
    return bool(_INSTRUCTION.match(text) or _VERB.search(text))


def test_every_rule_the_checks_can_emit_is_worded_or_reads_as_a_sentence(
    emitted: dict[str, list[str]],
) -> None:
    assert len(emitted) > 300  # the selection resolved: not an empty list that passes by itself
    unworded = {}
    for code, formats in emitted.items():
        rule = RULES.get(code)
        if code.startswith(_WORDED_BY_CODE) or (rule is not None and rule.template):
            continue
        labels = [plain_message(f) for f in formats if not reads_as_a_sentence(plain_message(f))]
        if labels:
            unworded[code] = labels
    assert unworded == {}, "word these in gateway/rules.py (_WORDED): " + json.dumps(unworded, indent=1)


def test_a_wording_that_names_something_finds_the_name_in_every_message(
    emitted: dict[str, list[str]],
) -> None:
    # `{names}` comes from the first `quoted` word of ruff's message; a message without one
    # would leave the sentence without its name, and the finding is then not said at all.
    nameless = {
        code: formats
        for code, formats in emitted.items()
        if (rule := RULES.get(code)) is not None
        and rule.template is not None
        and "{names}" in rule.template
        and rule.name_from == "message"
        and not all("`{" in f for f in formats)
    }
    assert nameless == {}


def test_the_judge_tells_a_label_from_a_sentence() -> None:
    assert not reads_as_a_sentence(
        plain_message("Extracting value from dictionary without calling `.items()`")
    )
    assert not reads_as_a_sentence(plain_message("Unnecessary generator (rewrite as a list comprehension)"))
    assert reads_as_a_sentence(plain_message("Use `elif` instead of `else` then `if`, to reduce indentation"))
    assert reads_as_a_sentence(plain_message("`{name}` is too complex ({complexity} > {max_complexity})"))
