"""What a reviewed function uses from its repository, as compact text for the model's prompt.

The model reviews one function; what it calls is elsewhere. This gives it the signatures (and the
first paragraph of the docstrings) of the functions and classes the function calls or names, the
attributes of its own class, and the module constants it reads, all found in the snapshot: a
name that leads outside it (stdlib, third-party) is left out, since the model knows those.

Only the function's own source is parsed here whole (it is small); what it uses is read from the
files through the snapshot's `SnapshotIndex` (its tables come from its own parser, within the
parse budget, and a file it refuses is skipped), and each definition shown is parsed from its
header and docstring alone, a class from its text with the methods cut out. Nothing is executed.
"""

from analyzer.uses.context import MAX_ENTRIES, MAX_NAMES, MAX_SOURCE_CHARS, uses_of

__all__ = ["MAX_ENTRIES", "MAX_NAMES", "MAX_SOURCE_CHARS", "uses_of"]
