"""servicekit.access: the API keys, the rate limit's form and its Retry-After, for both services.

How each service answers a refusal over HTTP (its own bodies, X-Request-ID, what stays open) is
tested with the service: tests/analyzer/test_access.py and tests/gateway/test_access.py.
"""

from __future__ import annotations

from typing import Any, cast

import pydantic
import pytest
from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.types import Scope

import analyzer.settings
import gateway.settings
from servicekit.access import AccessSettings, ApiKeys, client_address, is_open, retry_after

# The analyzer's and the gateway's settings read CODEREVIEW_API_KEYS and CODEREVIEW_RATE_LIMIT
# from AccessSettings: each case runs against both, as the services build them.
SERVICES = [analyzer.settings.Settings, gateway.settings.Settings]


@pytest.mark.parametrize("settings_class", SERVICES)
@pytest.mark.parametrize(
    "value", ["60", "60/minutes", "0/minute", "1001/second", "-1/hour", "sixty/minute", "60/minute/2"]
)
def test_a_malformed_rate_limit_is_refused_at_start(settings_class: type[AccessSettings], value: str) -> None:
    with pytest.raises(
        pydantic.ValidationError,
        match=r"must look like 60/minute \(second\|minute\|hour\|day, 1 to 1000 requests\)",
    ):
        settings_class(_env_file=None, codereview_rate_limit=value)


@pytest.mark.parametrize("settings_class", SERVICES)
def test_settings_read_the_limit_and_keys_and_never_show_them(settings_class: type[AccessSettings]) -> None:
    configured = settings_class(
        _env_file=None, codereview_api_keys=" a-key-1 ,, b-key-2 ", codereview_rate_limit=" 60 / minute "
    )
    assert configured.api_keys == ["a-key-1", "b-key-2"]
    assert configured.rate_limit == ("minute", 60)
    assert settings_class(_env_file=None, codereview_rate_limit="1000/day").rate_limit == ("day", 1000)
    assert "a-key-1" not in repr(configured)
    assert "a-key-1" not in str(configured.model_dump())
    off = settings_class(_env_file=None, codereview_api_keys="", codereview_rate_limit="")
    assert off.api_keys == []
    assert off.rate_limit is None
    assert settings_class(_env_file=None).rate_limit is None


def test_api_keys_match_only_a_whole_bearer_key() -> None:
    keys = ApiKeys(["k-one", "k-two"])
    assert keys.match("Bearer k-two") == 1
    assert keys.match("  bearer   k-one ") == 0
    for header in (None, "", "Bearer", "Bearer k-on", "Bearer k-one2", "Token k-one", "k-one"):
        assert keys.match(header) is None
    assert keys
    assert not ApiKeys([])
    assert ApiKeys([]).match("Bearer ") is None


def test_only_health_metrics_and_schema_are_open() -> None:
    for path in ("/health", "/health/ready", "/metrics", "/schema", "/schema/openapi.json"):
        assert is_open(cast(Scope, {"path": path})), path
    for path in ("/", "/healthz", "/analyze", "/v1/models", "/analyze/health", "/schemas"):
        assert not is_open(cast(Scope, {"path": path})), path


def test_retry_after_is_the_limiters_reset_in_whole_seconds_and_at_least_one() -> None:
    limited = TooManyRequestsException(headers={"RateLimit-Reset": "42", "RateLimit-Limit": "2"})
    expected = {"RateLimit-Reset": "42", "RateLimit-Limit": "2", "Retry-After": "42"}
    assert retry_after(limited) == (42, expected)
    assert retry_after(TooManyRequestsException(headers={"RateLimit-Reset": "0"}))[0] == 1
    assert retry_after(TooManyRequestsException())[1] == {"Retry-After": "1"}


@pytest.mark.parametrize("settings_class", SERVICES)
def test_forwarded_allow_ips_trusts_no_proxy_unless_named(settings_class: type[AccessSettings]) -> None:
    assert settings_class(_env_file=None).trusted_proxies == []
    named = settings_class(_env_file=None, forwarded_allow_ips=" 10.0.0.5 , 172.16.0.0/12,,::1, * ")
    assert named.trusted_proxies == ["10.0.0.5", "172.16.0.0/12", "::1", "*"]
    for value in ("proxy.local", "10.0.0.300", "10.0.0.0/33", "127.0.0.1;10.0.0.1"):
        with pytest.raises(pydantic.ValidationError, match="FORWARDED_ALLOW_IPS must list IP addresses"):
            settings_class(_env_file=None, forwarded_allow_ips=value)


@pytest.mark.parametrize(
    ("host", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),
        ("2001:db8:0:1::1", "2001:db8:0:1::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not-an-address", "not-an-address"),
        (None, "unknown"),
    ],
)
def test_the_limit_counts_per_address_and_per_ipv6_64(host: str | None, client: str) -> None:
    scope: dict[str, Any] = {
        "type": "http",
        "client": (host, 1234) if host else None,
        "headers": [],
        "path": "/",
    }
    assert client_address(Request(cast(Scope, scope))) == client
