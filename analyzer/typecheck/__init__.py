"""Types across the repository: ty over a whole snapshot, off the request path, within a budget.

ty (a type checker written in Rust, a wheel on PyPI) reads the snapshot's Python files and never
imports or runs them. It runs once per snapshot, in the background (`TypeChecks`), in a process
of its own with a time, memory, thread and output budget (`run`), isolated from the repository's
configuration and from the analyzer's environment. Of what it says, the review keeps only bugs in
one function said with certainty (`rules`): undefined names, missing or unknown arguments,
attributes and calls of a possibly-None value. A check that fails or is late leaves the review
without types, never without an answer.
"""

from analyzer.typecheck.cache import TypeChecks
from analyzer.typecheck.run import TypeCheckBudget, TypeCheckFailed, check_snapshot

__all__ = ["TypeCheckBudget", "TypeCheckFailed", "TypeChecks", "check_snapshot"]
