"""servicekit.bodies against Litestar itself: bodies that are not UTF-8, and what a refused typed
body reports, path and all.

The services word these as their own 400s and 422s; their own tests check the bodies they answer.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
import pytest
from litestar import Litestar, Request, Response, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient

from servicekit.bodies import BodyProblem, body_problem, require_utf8_body


class Item(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    count: Annotated[int, msgspec.Meta(ge=1)] = 1


class Order(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    items: list[Item]


@post("/orders", status_code=200)
async def take(data: JSONBody[Order]) -> None:
    pass


def problem_as_json(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return Response(dataclasses.asdict(body_problem(exc)), status_code=422)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", BodyProblem(reason="the request body is empty", empty=True)),
        (b"[]", BodyProblem(reason="Expected `object`, got `array`")),
        (b"{}", BodyProblem(reason="Object missing required field `items`")),
        (
            b'{"items": [{"name": "a", "count": 0}]}',
            BodyProblem(reason="Expected `int` >= 1 - at `$.items[0].count`", path="items[0].count"),
        ),
        (
            b'{"items": [], "extra": 1}',
            BodyProblem(reason="Object contains unknown field `extra`"),
        ),
    ],
)
async def test_a_refused_body_reports_msgspecs_reason_with_the_clients_path(
    body: bytes, expected: BodyProblem
) -> None:
    app = Litestar([take], exception_handlers={ValidationException: problem_as_json})
    async with AsyncTestClient(app) as client:
        response = await client.post("/orders", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert BodyProblem(**response.json()) == expected


class NotUtf8Error(Exception):
    pass


def not_utf8(request: Request[Any, Any, Any], exc: NotUtf8Error) -> Response[str]:
    return Response(str(exc), status_code=400)


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b'{"items": [{"name": "\xff"}]}', 400, "byte 21: invalid start byte"),
        ('{"items": []}'.encode("utf-16"), 400, "byte 0: invalid start byte"),
        ('{"items": [{"name": "caf\u00e9"}]}'.encode(), 200, "null"),
    ],
)
async def test_a_body_that_is_not_utf_8_is_refused_before_the_handler_decodes_it(
    body: bytes, status: int, text: str
) -> None:
    def refuse(exc: UnicodeDecodeError) -> NotUtf8Error:
        return NotUtf8Error(f"byte {exc.start}: {exc.reason}")

    app = Litestar(
        [take], before_request=require_utf8_body(refuse), exception_handlers={NotUtf8Error: not_utf8}
    )
    async with AsyncTestClient(app) as client:
        response = await client.post("/orders", content=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.text) == (status, text)
