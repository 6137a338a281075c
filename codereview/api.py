"""The HTTP side: the analyzer's and the gateway's endpoints, with every failure turned into a CliError.

Answers are read with a size cap (a service gone wrong cannot fill memory) and checked for the
keys the command needs, so a broken answer is one clear line too, never a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from codereview.errors import CliError, ExitCode
from jobs_contract import JobRecord
from review_contract import ReviewContext
from review_contract.scan import FindingsPage, ScanRequest, ScanStatus

# Far above any answer of ours (a page of names, a list of suggestions, a job record).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# A scan's SARIF holds every finding of a repository: the stdlib's is a few MB.
MAX_SARIF_BYTES = 256 * 1024 * 1024
CONNECT_TIMEOUT_S = 5.0

_T = TypeVar("_T")


class Service:
    """One service's HTTP API: `name` and `setting` (the option that moves it) go into every error."""

    def __init__(
        self, name: str, base_url: str, setting: str, *, timeout_s: float, api_key: str | None = None
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.setting = setting
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
            # The CLI talks to the services it is given, not to whatever the environment proxies.
            trust_env=False,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _error(self, text: str, code: ExitCode, **details: Any) -> CliError:
        return CliError(f"{self.name} at {self.base_url}: {text}", code, service=self.name, **details)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> dict[str, Any]:
        """The JSON object the service answered with 200.

        Raises CliError: NOT_FOUND for 404, USAGE for 400/422, SERVICE for anything else
        (no connection, timeout, 409, 5xx, an answer that is not a JSON object).
        """
        try:
            async with self._client.stream(method, path, json=body, params=params) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise self._error(
                            f"answered more than {max_bytes} bytes to {method} {path}; "
                            "is this URL really the service?",
                            ExitCode.SERVICE,
                        )
        except httpx.ConnectError as exc:
            raise self._error(
                f"cannot connect ({_reason(exc)}); is the stack running (python3 dev.py up)? "
                f"Or point {self.setting} at it",
                ExitCode.SERVICE,
            ) from None
        except httpx.TimeoutException:
            raise self._error(
                f"no answer to {method} {path} within {self.timeout_s:g} s; try a longer --timeout",
                ExitCode.SERVICE,
            ) from None
        except httpx.HTTPError as exc:
            raise self._error(f"{method} {path} failed: {_reason(exc)}", ExitCode.SERVICE) from None
        try:
            answer = msgspec.json.decode(bytes(data))
        except msgspec.DecodeError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        if response.status_code == 200:
            raise self._error(
                f"answered {method} {path} with something that is not a JSON object; "
                f"is {self.setting} the right URL?",
                ExitCode.SERVICE,
            )
        raise self._status_error(response.status_code, answer, bytes(data))

    def _status_error(self, status: int, answer: object, raw: bytes) -> CliError:
        detail = _detail(answer) or raw[:300].decode(errors="replace").strip() or "(empty body)"
        extra = answer.get("extra") if isinstance(answer, dict) else None
        details: dict[str, Any] = {"status": status}
        if isinstance(extra, dict) and isinstance(extra.get("did_you_mean"), list):
            details["did_you_mean"] = [str(name) for name in extra["did_you_mean"]]
        if status == httpx.codes.UNAUTHORIZED:
            # The service's own message says a key is wanted; ours says how to give one.
            return self._error(
                f"{status}: {detail}; give the key with CODEREVIEW_API_KEY (or --api-key)",
                ExitCode.USAGE,
                **details,
            )
        if status == httpx.codes.NOT_FOUND:
            code = ExitCode.NOT_FOUND
        elif status in (httpx.codes.BAD_REQUEST, httpx.codes.UNPROCESSABLE_ENTITY):
            code = ExitCode.USAGE
        else:
            code = ExitCode.SERVICE
        return self._error(f"{status}: {detail}", code, **details)


def _detail(answer: object) -> str | None:
    """An error body's message: the analyzer's `detail`, or the gateway's OpenAI-style `error.message`."""
    if not isinstance(answer, dict):
        return None
    if isinstance(answer.get("detail"), str):
        return str(answer["detail"])
    error = answer.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _strings(service: Service, answer: dict[str, Any], key: str) -> list[str]:
    value = answer.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise service._error(f"answered without a list of strings in {key!r}", ExitCode.SERVICE)
    return value


class Analyzer(Service):
    """The analyzer's endpoints."""

    def __init__(self, base_url: str, *, timeout_s: float, api_key: str | None = None) -> None:
        setting = "--analyzer-url / CODEREVIEW_ANALYZER_URL"
        super().__init__("analyzer", base_url, setting, timeout_s=timeout_s, api_key=api_key)

    async def start(self, repo_url: str) -> str:
        answer = await self.call("POST", "/analyze/start", body={"repo_url": repo_url})
        job_id = answer.get("job_id")
        if not isinstance(job_id, str):
            raise self._error("answered /analyze/start without a job_id", ExitCode.SERVICE)
        return job_id

    async def job(self, job_id: str) -> JobRecord:
        answer = await self.call("GET", f"/analyze/jobs/{quote(job_id, safe='')}")
        try:
            return msgspec.convert(answer, JobRecord)
        except msgspec.ValidationError as exc:
            raise self._error(f"answered a job record that is not one: {exc}", ExitCode.SERVICE) from None

    async def review(self, job_id: str, function_name: str) -> list[str]:
        answer = await self.call(
            "POST", "/analyze/function", body={"job_id": job_id, "function_name": function_name}
        )
        return _strings(self, answer, "suggestions")

    async def functions(self, job_id: str, params: Mapping[str, str | int]) -> dict[str, Any]:
        """One page of `GET /analyze/jobs/{job_id}/functions`, as the analyzer answered it."""
        answer = await self.call("GET", f"/analyze/jobs/{quote(job_id, safe='')}/functions", params=params)
        names = answer.get("functions")
        if not isinstance(names, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in names
        ):
            raise self._error("answered a function list without names", ExitCode.SERVICE)
        return answer

    async def scan(self, request: ScanRequest) -> str:
        """Start a scan (`POST /analyze/scan`); its id."""
        answer = await self.call("POST", "/analyze/scan", body=msgspec.to_builtins(request))
        scan_id = answer.get("scan_id")
        if not isinstance(scan_id, str):
            raise self._error("answered /analyze/scan without a scan_id", ExitCode.SERVICE)
        return scan_id

    async def scan_status(self, scan_id: str) -> ScanStatus:
        answer = await self.call("GET", f"/analyze/scans/{quote(scan_id, safe='')}")
        return self._shaped(answer, ScanStatus, "a scan status")

    async def scan_findings(self, scan_id: str, *, limit: int, cursor: str | None) -> FindingsPage:
        params: dict[str, str | int] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await self.call("GET", f"/analyze/scans/{quote(scan_id, safe='')}/findings", params=params)
        return self._shaped(answer, FindingsPage, "a page of findings")

    async def scan_sarif(self, scan_id: str) -> dict[str, Any]:
        """The scan's SARIF log, as the analyzer wrote it (a JSON object with `runs`)."""
        answer = await self.call(
            "GET", f"/analyze/scans/{quote(scan_id, safe='')}/sarif", max_bytes=MAX_SARIF_BYTES
        )
        if not isinstance(answer.get("runs"), list):
            raise self._error("answered a SARIF log without runs", ExitCode.SERVICE)
        return answer

    def _shaped(self, answer: dict[str, Any], shape: type[_T], what: str) -> _T:
        try:
            return msgspec.convert(answer, shape)
        except msgspec.ValidationError as exc:
            raise self._error(f"answered {what} that is not one: {exc}", ExitCode.SERVICE) from None


class Gateway(Service):
    """The gateway's review of code sent as it is."""

    def __init__(self, base_url: str, *, timeout_s: float, api_key: str | None = None) -> None:
        setting = "--gateway-url / CODEREVIEW_GATEWAY_URL"
        super().__init__("gateway", base_url, setting, timeout_s=timeout_s, api_key=api_key)

    async def analyze(self, function_code: str) -> list[str]:
        answer = await self.call("POST", "/analyze", body={"function_code": function_code})
        return _strings(self, answer, "suggestions")

    async def review_in_module(self, function_code: str, context: ReviewContext) -> list[str]:
        """The suggestions for `function_code` checked in its module (the `code-review` model with
        `review_context`); CliError as for any call."""
        body = {
            "model": "code-review",
            "messages": [{"role": "user", "content": function_code}],
            "review_context": msgspec.to_builtins(context),
        }
        answer = await self.call("POST", "/v1/chat/completions", body=body)
        try:
            content = answer["choices"][0]["message"]["content"]
            review = msgspec.json.decode(content)
        except (KeyError, IndexError, TypeError, msgspec.DecodeError):
            raise self._error("answered a chat completion without a review in it", ExitCode.SERVICE) from None
        if not isinstance(review, dict):
            raise self._error("answered a review that is not an object", ExitCode.SERVICE)
        return _strings(self, review, "suggestions")
