"""servicekit.bodies against Litestar itself: what a refused typed body reports, path and all.

The gateway's 422s and model_host's 400s word these; their own tests check the bodies they answer.
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

from servicekit.bodies import BodyProblem, body_problem


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
