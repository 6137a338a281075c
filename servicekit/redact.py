"""Another party's text (a provider's error body, a service's error message) made fit to show.

What a provider says when it fails is its own business and may hold anything, the caller's API key
among it (providers echo the key they were sent). The services say what failed in their own words;
where a line for the operator quotes the other party at all, it quotes `excerpt` of it: short,
every key-like token masked, control and bidi characters escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
EXCERPT_CHARS = 120

# Tokens that look like credentials, whatever the provider: an Authorization value, the usual key
# prefixes (OpenAI/DeepSeek sk-, GitHub ghp_/github_pat_, Slack xox*-), any unbroken run of 32 or
# more key characters (hex and base64 keys), and any shorter word of 12 or more that mixes letters
# and digits the way generated keys do.
_KEYLIKE = re.compile(
    r"(?i:bearer|basic|token)\s+\S+"
    r"|\b(?i:sk|pk|rk|ghp|gho|ghs|ghu|ghr|github_pat|xox[abprs]|api[-_]?key)[-_][\w.\-]*"
    r"|[\w+\-]{32,}"
    r"|\b(?=[\w\-]*\d)(?=[\w\-]*[A-Za-z])[\w\-]{12,}"
)


def mask_keys(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` with each of the `known` secrets, then anything that looks like a key, as `***`."""
    for secret in sorted((s for s in known if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _KEYLIKE.sub(MASK, text)


def escaped(text: str) -> str:
    """`text` with every character that is not printable (line feeds, ESC, C1 controls such as
    U+009B, bidi overrides such as U+202E) written as a `\\uXXXX` escape: one line, no terminal codes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def excerpt(text: str, known: Iterable[str | None] = (), limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `text` (plus `…` when cut), keys masked, then escaped.

    Masked before it is cut, so a key the cut would shorten past recognition is masked whole.
    """
    masked = mask_keys(text[: limit * 4], known)
    cut = masked[:limit] + ("…" if len(masked) > limit or len(text) > limit * 4 else "")
    return escaped(cut)
