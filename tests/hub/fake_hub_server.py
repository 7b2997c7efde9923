"""A minimal local stand-in for the Hugging Face Hub HTTP API, for offline push / download tests.

Serves the routes that `huggingface_hub` (and therefore `transformers`) calls for create-repo, upload-by-commit,
repo info, file listing and file download (see hf-stack-notes.md §4). State lives in memory.

What it does NOT cover (the tests that use it cannot catch problems there):
- LFS / Xet transfers: preupload answers "regular" for every file, so the content arrives base64-inline in the
  commit; an `lfsFile` commit line is refused with 400.
- Authentication and permissions: tokens are ignored, private repos are readable by anyone.
- The Hub's real validation: YAML metadata is accepted as is, repo names are not checked, no rate limits, no
  pull requests, branches or tags (any revision other than "main" must be a commit sha).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_API = rf"/api/(?P<type>model|dataset|space)s/{_REPO}"
ROUTES = [  # (method, pattern, handler name); first match wins
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", rf"{_API}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"{_API}/commit/(?P<rev>[^/]+)", "commit"),
    ("GET", rf"{_API}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("GET", rf"{_API}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("HEAD", rf"/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ("GET", rf"/(?:(?P<type>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


@dataclass
class FakeRepo:
    private: bool = False
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, files) oldest first

    @property
    def head(self) -> tuple[str, dict[str, bytes]]:
        return self.commits[-1]

    def snapshot(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision == "main":
            return self.head
        return next((commit for commit in self.commits if commit[0] == revision), None)


class FakeHubState:
    """All repos (key "model/org/name") and a log of (method, path) requests, shared by the handler threads."""

    def __init__(self):
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """Files at the head of a repo (raises KeyError for an unknown repo)."""
        return dict(self.repos[f"{repo_type}/{repo_id}"].head[1])


class FakeHubHandler(BaseHTTPRequestHandler):
    state: FakeHubState  # set on the server-specific subclass

    def log_message(self, *args):  # keep pytest output clean
        pass

    # -- plumbing -------------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        with self.state.lock:
            self.state.requests.append((method, path))
        for route_method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                with self.state.lock:
                    return getattr(self, name)(**{k: v for k, v in match.groupdict().items()})
        self._reply(404, {"error": f"fake hub: no route for {method} {path}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload=None, *, raw: bytes | None = None, headers: dict | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _repo(self, type: str | None, repo: str) -> FakeRepo | None:
        repo_type = (type or "model").rstrip("s")  # "datasets" (resolve URLs) and "dataset" (API URLs) alike
        found = self.state.repos.get(f"{repo_type}/{repo}")
        if found is None:
            self._reply(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        return found

    @property
    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # -- routes ---------------------------------------------------------------------------------------------------
    def create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        key = f"{payload.get('type') or 'model'}/{repo_id}"
        url = self._base_url + ("" if key.startswith("model/") else f"/{key.split('/')[0]}s") + f"/{repo_id}"
        if key in self.state.repos:
            return self._reply(409, {"error": "You already created this repo", "url": url})
        private = payload.get("private") is True or payload.get("visibility") == "private"
        self.state.repos[key] = FakeRepo(private=private, commits=[(hashlib.sha1(key.encode()).hexdigest(), {})])
        self._reply(200, {"url": url, "name": repo_id})

    def validate_yaml(self) -> None:
        self._body()
        self._reply(200, {"errors": [], "warnings": []})

    def preupload(self, type, repo, rev) -> None:
        files = json.loads(self._body())["files"]
        if self._repo(type, repo) is not None:
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            self._reply(200, {"files": modes, "commitOid": None})

    def commit(self, type, repo, rev) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        found = self._repo(type, repo)
        if found is None:
            return
        files = dict(found.head[1])
        summary = ""
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                return self._reply(400, {"error": f"fake hub: commit line {key!r} is not supported (no LFS/Xet)"})
        digest = hashlib.sha1(found.head[0].encode() + summary.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        sha = digest.hexdigest()
        found.commits.append((sha, files))
        self._reply(200, {"commitUrl": f"{self._base_url}/{repo}/commit/{sha}", "commitOid": sha, "success": True})

    def repo_info(self, type, repo, rev=None) -> None:
        found = self._repo(type, repo)
        if found is None:
            return
        commit = found.snapshot(rev or "main")
        if commit is None:
            return self._reply(404, {"error": "Revision not found"}, headers={"X-Error-Code": "RevisionNotFound"})
        sha, files = commit
        siblings = [{"rfilename": path} for path in sorted(files)]
        self._reply(200, {"id": repo, "modelId": repo, "sha": sha, "private": found.private, "siblings": siblings,
                          "tags": [], "disabled": False, "gated": False})

    def tree(self, type, repo, rev, path=None) -> None:
        found = self._repo(type, repo)
        if found is None:
            return
        prefix = (path or "").strip("/")
        _, files = found.snapshot(rev) or (None, {})
        entries = [
            {"type": "file", "path": p, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
            for p, c in sorted(files.items()) if not prefix or p.startswith(prefix + "/")
        ]
        self._reply(200, entries)

    def resolve(self, type, repo, rev, path) -> None:
        found = self._repo(type, repo)
        if found is None:
            return
        commit = found.snapshot(rev)
        if commit is None:
            return self._reply(404, {"error": "Revision not found"}, headers={"X-Error-Code": "RevisionNotFound"})
        sha, files = commit
        if path not in files:
            return self._reply(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"})
        content = files[path]
        etag = f'"{hashlib.sha256(content).hexdigest()}"'
        self._reply(200, raw=content, headers={"ETag": etag, "X-Repo-Commit": sha})


class FakeHub:
    """Serve a fresh :class:`FakeHubState` on 127.0.0.1 (a free port) in a daemon thread; use as a context manager."""

    def __init__(self):
        self.state = FakeHubState()
        handler = type("BoundFakeHubHandler", (FakeHubHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
