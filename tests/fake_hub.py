"""A fake Hugging Face Hub on 127.0.0.1: the endpoints that ``huggingface_hub`` calls for
``HfApi.create_repo`` and ``HfApi.upload_folder`` (without ``hf_xet``), speaking the same JSON.

* ``POST /api/repos/create``: makes ``namespace/name`` (``fake-user`` when no namespace is
  given); 409 when it exists.
* ``POST /api/validate-yaml``: the README's YAML front matter must parse to a mapping, and its
  ``license`` must look like a Hub licence id.
* ``POST /api/{type}s/{repo}/preupload/{revision}``: ``"lfs"`` for binary samples (a NUL byte)
  and files over 10 MB, ``"regular"`` otherwise, as the Hub decides; with ``lfs=False``, every
  file is ``"regular"`` (sent inside the commit).
* ``POST /{prefix}{repo}.git/info/lfs/objects/batch``: LFS batch API, basic transfer; the upload
  and verify actions point back here.
* ``PUT /lfs/{oid}``: the object's bytes (Content-Length or chunked); its sha256 must be ``oid``.
* ``POST /lfs-verify``: the object must have been uploaded with that size.
* ``POST /api/{type}s/{repo}/commit/{revision}``: the NDJSON commit; regular files arrive in
  base64, LFS files by oid (which must have been uploaded). Files are kept in :attr:`repos`.

Every call needs ``Authorization: Bearer <token>`` with the server's token (else 401), and is
logged in :attr:`log` with its method, path and headers, so tests can check what was sent.

Not served: Xet storage. With ``hf_xet`` installed, ``huggingface_hub`` uploads LFS-mode files
through a Xet CAS server (a Rust client and protocol); tests then use ``lfs=False``, or make
``huggingface_hub`` take its LFS path (see ``tests/test_hub.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

__all__ = ["FakeHub", "HubRequest"]

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_THRESHOLD = 10 * 1024 * 1024


@dataclass
class HubRequest:
    """One request as the fake Hub saw it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class FakeRepo:
    """A repo on the fake Hub: its type, visibility, files (path -> bytes) and commits."""

    kind: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    """The fake Hub; use as a context manager. ``url`` is its endpoint."""

    def __init__(self, token: str = "hf_fake_token", namespace: str = "fake-user", *, lfs: bool = True):
        self.token = token
        self.namespace = namespace
        self.lfs_enabled = lfs
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.lfs: dict[str, bytes] = {}
        self.log: list[HubRequest] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the fake Hub is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeHub:
        fake = self

        class Handler(_Handler):
            hub = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def repo(self, kind: str, repo_id: str) -> FakeRepo:
        return self.repos[(kind, repo_id)]

    # -- the endpoints -------------------------------------------------------------------
    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if method == "POST" and path == "/api/repos/create":
            return self.create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self.validate_yaml(json.loads(body))
        if method == "PUT" and (m := re.fullmatch(r"/lfs/([0-9a-f]{64})", path)):
            return self.lfs_put(m.group(1), body)
        if method == "POST" and path == "/lfs-verify":
            data = json.loads(body)
            ok = len(self.lfs.get(data.get("oid"), b"")) == data.get("size") and data.get("oid") in self.lfs
            return (200, {"success": True}) if ok else (404, {"error": "object not uploaded"})
        if method == "POST" and (
            m := re.fullmatch(r"/api/(model|dataset|space)s/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
        ):
            kind, repo_id, action, _revision = m.groups()
            if (kind, repo_id) not in self.repos:
                return 404, {"error": f"Repository not found: {repo_id}"}
            if action == "preupload":
                return self.preupload(json.loads(body))
            return self.commit(kind, repo_id, body)
        if method == "POST" and (m := re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)):
            return self.lfs_batch(json.loads(body))
        return 404, {"error": f"the fake Hub has no {method} {path}"}

    def create_repo(self, data: dict) -> tuple[int, Any]:
        kind = data.get("type") or "model"
        repo_id = f"{data.get('organization') or self.namespace}/{data['name']}"
        url = f"{self.url}/{_PREFIX[kind]}{repo_id}"
        if (kind, repo_id) in self.repos:
            return 409, {"error": f"You already created this {kind} repo", "url": url}
        self.repos[(kind, repo_id)] = FakeRepo(kind=kind, private=data.get("visibility") == "private")
        return 200, {"url": url, "name": repo_id}

    def validate_yaml(self, data: dict) -> tuple[int, Any]:
        content = data.get("content", "")
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []}
        licence = meta.get("license")
        if licence is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", str(licence)):
            return 400, {"errors": [{"message": f'"license" must be a Hub licence id, got {licence!r}'}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def preupload(self, data: dict) -> tuple[int, Any]:
        files = []
        for f in data["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = self.lfs_enabled and (b"\x00" in sample or f["size"] > _LFS_THRESHOLD)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        return 200, {"files": files, "commitOid": "0" * 40}

    def lfs_batch(self, data: dict) -> tuple[int, Any]:
        objects = []
        for obj in data["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/lfs-verify"},
                }
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_put(self, oid: str, body: bytes) -> tuple[int, Any]:
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {"error": "sha256 does not match the oid"}
        self.lfs[oid] = body
        return 200, {}

    def commit(self, kind: str, repo_id: str, body: bytes) -> tuple[int, Any]:
        repo = self.repos[(kind, repo_id)]
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return 400, {"error": "the commit must start with a header line"}
        staged: dict[str, bytes] = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.lfs:
                    return 422, {"error": f"LFS object {value['oid']} of {value['path']} was not uploaded"}
                staged[value["path"]] = self.lfs[value["oid"]]
            else:
                return 400, {"error": f"the fake Hub does not handle {line['key']!r}"}
        repo.files.update(staged)
        oid = hashlib.sha1(body).hexdigest()
        repo.commits.append(lines[0]["value"]["summary"])
        return 200, {"commitUrl": f"{self.url}/{_PREFIX[kind]}{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._body()
        request = HubRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with self.hub.lock:
            if self.headers.get("Authorization") != f"Bearer {self.hub.token}" and not self.path.startswith("/lfs/"):
                status, payload = 401, {"error": "Invalid credentials in Authorization header"}
            else:
                status, payload = self.hub.route(self.command, self.path, body)
            request.status = status
            self.hub.log.append(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Error-Message", str(payload.get("error") or payload))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
