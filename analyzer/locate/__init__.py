"""Find the function a user names in the files of one commit, and give its exact source.

Names look like `pkg.sub.module.func`, `module.Class.Inner.method`, `module.outer.inner`, or any
suffix of such a name (`mod.func` for `pkg/mod.py`, `Inner.method`, even `func` alone). The jobs:
`names` checks and splits a name, `tables` parses a file into the positions of its definitions
(picklable, for the warm-up worker), `files` ranks the files that may hold a name, `resolver`
finds the definition (following re-exports), `text` says which files' text may define a name,
`suggest` offers close names for a 404, and
`errors` says why a lookup failed. docs/lookup.md has the rules.
"""

from analyzer.locate.errors import LookupFailed, MalformedName, NameNotFound, SearchFailed, UnparsableSource
from analyzer.locate.files import SOURCE_ROOTS
from analyzer.locate.names import MAX_NAME_CHARS, MAX_NAME_PARTS
from analyzer.locate.resolver import MAX_REEXPORT_HOPS, FoundFunction, Reached, SnapshotIndex
from analyzer.locate.suggest import MAX_SUGGESTIONS
from analyzer.locate.tables import ParsedFile, parse_files

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_NAME_PARTS",
    "MAX_REEXPORT_HOPS",
    "MAX_SUGGESTIONS",
    "SOURCE_ROOTS",
    "FoundFunction",
    "LookupFailed",
    "MalformedName",
    "NameNotFound",
    "ParsedFile",
    "Reached",
    "SearchFailed",
    "SnapshotIndex",
    "UnparsableSource",
    "parse_files",
]
