"""Container health probe: exit 0 when the service answers 200 on GET /health, 1 otherwise.

    python /opt/codereview/healthcheck.py PORT_VARIABLE DEFAULT_PORT [PATH]

The port comes from the same environment variable the service reads (ANALYZER_PORT, ...), so a
container started with another port is still probed on the right one. Slim images carry no
curl or wget; the standard library is enough. What it prints ends up in `docker inspect`.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3.0


def probe(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """(healthy, why): healthy only for a 200; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        return False, f"{url} answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"{url} unreachable: {reason}"
    if status != 200:
        return False, f"{url} answered {status}"
    return True, f"{url} answered 200"


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: healthcheck.py PORT_VARIABLE DEFAULT_PORT [PATH]", file=sys.stderr)
        return 1  # Docker reserves exit code 2; anything but 0 reads as unhealthy
    variable, default = argv[0], argv[1]
    path = argv[2] if len(argv) == 3 else "/health"
    port = os.environ.get(variable, "").strip() or default
    if not port.isdigit() or not 0 < int(port) < 65536:
        print(f"{variable}={port!r} is not a TCP port", file=sys.stderr)
        return 1  # Docker reserves exit code 2; anything but 0 reads as unhealthy
    healthy, why = probe(f"http://127.0.0.1:{int(port)}{path}")
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
