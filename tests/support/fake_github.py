"""A fake GitHub on loopback: the REST routes the fetcher uses, and codeload-like tarballs.

Routes (as GitHub answers them):
- `GET /repos/{owner}/{repo}` -> repository JSON with `default_branch`.
- `GET /repos/{owner}/{repo}/commits/{ref}` -> commit JSON with `sha` (or the bare sha with
  `Accept: application/vnd.github.sha`).
- `GET /repos/{owner}/{repo}/tarball[/{ref}]` -> 302 to `/codeload/{owner}/{repo}/legacy.tar.gz/{ref}`.
- `GET /codeload/{owner}/{repo}/legacy.tar.gz/{ref}` -> the `.tar.gz`, its top folder named
  `{owner}-{repo}-{sha7}/` and a pax global header whose comment is the commit sha, as GitHub's are.
- `GET /repos/{owner}/{repo}/pulls/{n}` -> the pull request JSON (`head.sha`, `changed_files`).
- `GET /repos/{owner}/{repo}/pulls/{n}/files?per_page=&page=` -> one page of its files (`filename`,
  `status`, `patch`, ...), `per_page` 30 by default and at most 100, at most 3,000 files in all,
  with GitHub's `Link` header.

Tests add repositories from a folder or a dict of files, or hand over raw archive bytes
(hostile tarballs), script faults per path, and read `requests` to check what was sent.
It is a real HTTP server (stdlib, own thread), so clients talk real HTTP to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Fault:
    """Answer requests whose path matches `pattern` this way, `times` times (None: always)."""

    pattern: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"message": "Server Error"}'
    times: int | None = 1
    # Close the connection without an answer (a dropped connection).
    drop: bool = False
    # Answer with a redirect to this URL instead.
    redirect_to: str | None = None
    # Seconds to wait before answering.
    delay: float = 0.0


# GitHub lists at most this many files of a pull request.
PULL_FILES_CAP = 3_000


@dataclass
class FakePull:
    number: int
    head_sha: str
    # GitHub's file entries (see `pull_file`).
    files: list[dict[str, object]]
    # What the pull request object says; None: len(files).
    changed_files: int | None = None


def pull_file(
    filename: str,
    patch: str | None = "@@ -1,1 +1,2 @@\n line\n+added",
    *,
    status: str = "modified",
    previous_filename: str | None = None,
) -> dict[str, object]:
    """One entry of a pull request's files as GitHub sends it (`patch` None: left out, as GitHub
    does for binary files and large diffs); additions, deletions and changes counted from the patch."""
    lines = patch.split("\n") if patch else []
    additions = sum(1 for line in lines if line.startswith("+"))
    deletions = sum(1 for line in lines if line.startswith("-"))
    entry: dict[str, object] = {
        "sha": make_sha(filename),
        "filename": filename,
        "status": status,
        "additions": additions,
        "deletions": deletions,
        "changes": additions + deletions,
        "blob_url": f"https://github.com/octo/demo/blob/x/{filename}",
        "raw_url": f"https://github.com/octo/demo/raw/x/{filename}",
        "contents_url": f"https://api.github.com/repos/octo/demo/contents/{filename}",
    }
    if patch is not None:
        entry["patch"] = patch
    if previous_filename is not None:
        entry["previous_filename"] = previous_filename
    return entry


@dataclass
class FakeRepo:
    owner: str
    repo: str
    default_branch: str = "main"
    # ref (branch, tag or sha) -> commit sha
    refs: dict[str, str] = field(default_factory=dict)
    # commit sha -> archive bytes
    archives: dict[str, bytes] = field(default_factory=dict)
    private: bool = False
    # This repository's archive trickles out: `trickle` bytes per write, a pause of `trickle_delay`
    # between writes (one slow download among fast ones); None: the server-wide chunk settings.
    trickle: int | None = None
    trickle_delay: float = 0.0
    pulls: dict[int, FakePull] = field(default_factory=dict)


def make_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def build_tarball(owner: str, repo: str, sha: str, files: dict[str, bytes]) -> bytes:
    """A .tar.gz shaped like GitHub's: pax global header with the sha, top folder owner-repo-sha7."""
    top = f"{owner}-{repo}-{sha[:7]}"
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": sha}
    ) as archive:
        directory = tarfile.TarInfo(top)
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o775
        archive.addfile(directory)
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size = len(data)
            info.mode = 0o664
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def files_from_folder(folder: Path, suffixes: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """Every regular file under `folder` (optionally only these suffixes), by relative POSIX path."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part in SKIP_DIRS for part in relative.parts):
            continue
        if not path.is_file() or path.is_symlink():
            continue
        if suffixes is not None and path.suffix not in suffixes:
            continue
        files[relative.as_posix()] = path.read_bytes()
    return files


class FakeGitHub:
    """Start with `with FakeGitHub.running() as github:`; `github.api_url` is GITHUB_API_URL."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # Bytes per write when sending archives, and a pause between writes (slow downloads).
        self.chunk_size = 64 * 1024
        self.chunk_delay = 0.0

    # -- set-up ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_repo(
        self,
        owner: str,
        repo: str,
        files: dict[str, bytes | str] | Path,
        *,
        ref: str | None = None,
        default_branch: str = "main",
        sha: str | None = None,
    ) -> str:
        """Serve `files` (a dict or a folder) as the commit that `ref` (default branch) points at.

        Returns the commit sha. Call again with another ref to add branches or tags.
        """
        content = (
            files_from_folder(files)
            if isinstance(files, Path)
            else {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
        )
        ref = ref or default_branch
        sha = sha or make_sha(f"{owner}/{repo}@{ref}:{len(content)}:{sorted(content)[:3]}")
        archive = build_tarball(owner, repo, sha, content)
        return self.add_archive(owner, repo, archive, ref=ref, default_branch=default_branch, sha=sha)

    def add_archive(
        self,
        owner: str,
        repo: str,
        archive: bytes,
        *,
        ref: str | None = None,
        default_branch: str = "main",
        sha: str | None = None,
    ) -> str:
        """Serve raw archive bytes (any content at all, hostile included) for `ref`."""
        ref = ref or default_branch
        sha = sha or make_sha(f"{owner}/{repo}@{ref}:{len(archive)}")
        with self.lock:
            key = (owner.lower(), repo.lower())
            entry = self.repos.setdefault(key, FakeRepo(owner, repo, default_branch=default_branch))
            entry.refs[ref] = sha
            entry.refs[sha] = sha
            entry.archives[sha] = archive
        return sha

    def add_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        files: list[dict[str, object]],
        *,
        head_sha: str | None = None,
        changed_files: int | None = None,
    ) -> str:
        """Serve pull request `number` with these file entries (`pull_file`); returns its head sha.

        The repository is created (with no commits) if it is not served yet.
        """
        head_sha = head_sha or make_sha(f"{owner}/{repo}#{number}")
        with self.lock:
            key = (owner.lower(), repo.lower())
            entry = self.repos.setdefault(key, FakeRepo(owner, repo))
            entry.pulls[number] = FakePull(number, head_sha, files, changed_files)
        return head_sha

    def trickle(self, owner: str, repo: str, *, size: int = 1, delay: float = 1.0) -> None:
        """Serve this repository's archives `size` bytes at a time, `delay` seconds apart."""
        with self.lock:
            entry = self.repos[(owner.lower(), repo.lower())]
            entry.trickle, entry.trickle_delay = size, delay

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, pattern: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if re.search(pattern, r.path)]

    # -- serving -----------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeGitHub]:
        github = cls()
        server = _Server(("127.0.0.1", 0), _handler_for(github))
        server.daemon_threads = True
        github._server = server
        thread = threading.Thread(target=server.serve_forever, name="fake-github", daemon=True)
        thread.start()
        try:
            yield github
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if re.search(fault.pattern, path) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _find(self, owner: str, repo: str) -> FakeRepo | None:
        with self.lock:
            return self.repos.get((owner.lower(), repo.lower()))


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client dropping its connection (a fetcher past its download deadline) is no error here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


_REPO = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)$")
_COMMIT = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/commits/(?P<ref>.+)$")
_TARBALL = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/tarball(?:/(?P<ref>.+))?$")
_PULL = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls/(?P<number>[0-9]+)$")
_PULL_FILES = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls/(?P<number>[0-9]+)/files$")
_CODELOAD = re.compile(r"^/codeload/(?P<owner>[^/]+)/(?P<repo>[^/]+)/legacy\.tar\.gz/(?P<ref>.+)$")


def _handler_for(github: FakeGitHub) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the tests read `github.requests`

        def do_GET(self) -> None:
            # GitHub takes a ref with slashes (release/2.0) both as is and percent-encoded.
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            with github.lock:
                github.requests.append(
                    RecordedRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                )
            fault = github._take_fault(path)
            if fault is not None:
                self._fault(fault)
                return
            if match := _REPO.match(path):
                self._repo(match["owner"], match["repo"])
            elif match := _COMMIT.match(path):
                self._commit(match["owner"], match["repo"], match["ref"])
            elif match := _TARBALL.match(path):
                self._tarball(match["owner"], match["repo"], match["ref"])
            elif match := _CODELOAD.match(path):
                self._codeload(match["owner"], match["repo"], match["ref"])
            elif match := _PULL.match(path):
                self._pull(match["owner"], match["repo"], int(match["number"]))
            elif match := _PULL_FILES.match(path):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                self._pull_files(match["owner"], match["repo"], int(match["number"]), query)
            else:
                self._json(404, {"message": "Not Found"})

        def _fault(self, fault: Fault) -> None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            if fault.redirect_to is not None:
                self._send(302, b"", {"Location": fault.redirect_to})
                return
            self._send(fault.status, fault.body, {"Content-Type": "application/json", **fault.headers})

        def _repo(self, owner: str, repo: str) -> None:
            entry = github._find(owner, repo)
            if entry is None or entry.private:
                self._json(404, {"message": "Not Found"})
                return
            self._json(
                200,
                {
                    "full_name": f"{entry.owner}/{entry.repo}",
                    "name": entry.repo,
                    "owner": {"login": entry.owner},
                    "default_branch": entry.default_branch,
                    "private": False,
                },
            )

        def _commit(self, owner: str, repo: str, ref: str) -> None:
            entry = github._find(owner, repo)
            sha = entry.refs.get(ref) if entry else None
            if entry is None or sha is None:
                self._json(404 if entry is None else 422, {"message": "No commit found for SHA: " + ref})
                return
            if self.headers.get("Accept", "") == "application/vnd.github.sha":
                self._send(200, sha.encode(), {"Content-Type": "application/vnd.github.sha"})
            else:
                self._json(200, {"sha": sha})

        def _tarball(self, owner: str, repo: str, ref: str | None) -> None:
            entry = github._find(owner, repo)
            if entry is None or entry.private:
                self._json(404, {"message": "Not Found"})
                return
            ref = ref or entry.default_branch
            if ref not in entry.refs:
                self._json(404, {"message": "Not Found"})
                return
            location = f"{github.api_url}/codeload/{entry.owner}/{entry.repo}/legacy.tar.gz/{ref}"
            self._send(302, b"", {"Location": location})

        def _codeload(self, owner: str, repo: str, ref: str) -> None:
            entry = github._find(owner, repo)
            sha = entry.refs.get(ref) if entry else None
            if entry is None or sha is None:
                self._send(404, b"404: Not Found", {"Content-Type": "text/plain"})
                return
            archive = entry.archives[sha]
            top = f"{entry.owner}-{entry.repo}-{sha[:7]}"
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Disposition", f"attachment; filename={top}.tar.gz")
            self.send_header("Content-Length", str(len(archive)))
            self.send_header("ETag", f'"{sha}"')
            self.end_headers()
            size, delay = github.chunk_size, github.chunk_delay
            if entry.trickle is not None:
                size, delay = entry.trickle, entry.trickle_delay
            try:
                for start in range(0, len(archive), size):
                    self.wfile.write(archive[start : start + size])
                    self.wfile.flush()
                    if delay:
                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _find_pull(self, owner: str, repo: str, number: int) -> FakePull | None:
            entry = github._find(owner, repo)
            if entry is None or entry.private:
                return None
            return entry.pulls.get(number)

        def _pull(self, owner: str, repo: str, number: int) -> None:
            pull = self._find_pull(owner, repo, number)
            if pull is None:
                self._json(404, {"message": "Not Found"})
                return
            changed = len(pull.files) if pull.changed_files is None else pull.changed_files
            self._json(
                200,
                {
                    "number": pull.number,
                    "state": "open",
                    "title": f"pull request {pull.number}",
                    "head": {"ref": f"topic-{pull.number}", "sha": pull.head_sha, "label": "octo:topic"},
                    "base": {"ref": "main", "sha": make_sha(f"base of {pull.number}")},
                    "changed_files": changed,
                    "additions": 0,
                    "deletions": 0,
                },
            )

        def _pull_files(self, owner: str, repo: str, number: int, query: dict[str, list[str]]) -> None:
            pull = self._find_pull(owner, repo, number)
            if pull is None:
                self._json(404, {"message": "Not Found"})
                return
            try:
                per_page = min(100, int(query.get("per_page", ["30"])[0]))
                page = max(1, int(query.get("page", ["1"])[0]))
            except ValueError:
                self._json(400, {"message": "Bad Request"})
                return
            listed = pull.files[:PULL_FILES_CAP]
            start = (page - 1) * per_page
            last = max(1, -(-len(listed) // per_page))
            base = f"{github.api_url}/repos/{owner}/{repo}/pulls/{number}/files?per_page={per_page}"
            links = [f'<{base}&page={page + 1}>; rel="next"'] if page < last else []
            links.append(f'<{base}&page={last}>; rel="last"')
            body = json.dumps(listed[start : start + per_page]).encode()
            self._send(200, body, {"Content-Type": "application/json", "Link": ", ".join(links)})

        def _json(self, status: int, body: object) -> None:
            self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
