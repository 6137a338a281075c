"""What the analyzer and the gateway say to each other about a review, beyond the OpenAI shape.

The analyzer asks the gateway's virtual model `code-review` through the `openai` package. For a
function from a repository it adds `review_context` to the request body (`extra_body`): the
module the function lives in, the repository's lint settings for that file, the type checker's
findings and what the function uses from the repository. The gateway answers in the message
content with `{"suggestions": [...], "findings": [...]}`: the suggestions as text, and each
finding as data (rule, line, severity, fingerprint).

Nothing here is needed for `POST /analyze` or `POST /analyze/function`: their bodies stay
exactly `{"function_code"}` / `{"job_id", "function_name"}` -> `{"suggestions": [...]}`.

For scans, `review_contract.checks` holds the shapes of `POST /checks` (whole modules at once).
"""

from review_contract.checks import (
    MAX_CHECK_FUNCTIONS,
    MAX_CHECK_MODULES,
    CheckedFunction,
    ChecksRequest,
    ChecksResponse,
    FunctionFindings,
    ModuleFindings,
    ModuleToCheck,
)
from review_contract.shapes import (
    MAX_CONTEXT_CHARS,
    MAX_MODULE_BYTES,
    MAX_TYPE_FINDINGS,
    SEVERITIES,
    Finding,
    LintSettings,
    ReviewContent,
    ReviewContext,
    Severity,
    TypeFinding,
    fingerprint,
)

__all__ = [
    "MAX_CHECK_FUNCTIONS",
    "MAX_CHECK_MODULES",
    "MAX_CONTEXT_CHARS",
    "MAX_MODULE_BYTES",
    "MAX_TYPE_FINDINGS",
    "SEVERITIES",
    "CheckedFunction",
    "ChecksRequest",
    "ChecksResponse",
    "Finding",
    "FunctionFindings",
    "LintSettings",
    "ModuleFindings",
    "ModuleToCheck",
    "ReviewContent",
    "ReviewContext",
    "Severity",
    "TypeFinding",
    "fingerprint",
]
