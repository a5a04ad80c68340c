"""A small client for the Kubernetes API over HTTPS with the admin's client certificate: what the cluster tier reads
and writes (discovery, get, list, create with a server-side dry run, patch, watch). The standard library only, so
the tier needs no Kubernetes client package."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit


class ApiError(Exception):
    def __init__(self, status: int, body: Any, what: str):
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{what}: HTTP {status}: {message}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Credentials:
    server: str
    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: its plural name and whether it sits in a namespace."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


class Kube:
    def __init__(self, credentials: Credentials):
        self.credentials = credentials
        url = urlsplit(credentials.server)
        self._host, self._port = url.hostname, url.port
        self._context = ssl.create_default_context(cafile=credentials.ca)
        self._context.load_cert_chain(credentials.cert, credentials.key)
        self._resources: dict[tuple[str, str], Resource] = {}
        self._discovered: set[str] = set()

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json", timeout: float = 30) -> Any:
        connection = self._connection(timeout)
        try:
            url = path + (f"?{urlencode(query)}" if query else "")
            payload = json.dumps(body) if body is not None else None
            connection.request(method, url, body=payload, headers={"Content-Type": content_type,
                                                                   "Accept": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            decoded = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            decoded = raw.decode(errors="replace")
        if response.status >= 400:
            raise ApiError(response.status, decoded, f"{method} {path}")
        return decoded

    def get(self, path: str) -> dict | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def resource(self, api_version: str, kind: str) -> Resource:
        """The kind's place in the API, from the server's discovery documents."""
        if (api_version, kind) not in self._resources and api_version not in self._discovered:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            for entry in self.request("GET", base)["resources"]:
                if "/" not in entry["name"]:  # subresources (pods/status) share their kind
                    self._resources[(api_version, entry["kind"])] = Resource(api_version, entry["kind"],
                                                                             entry["name"], entry["namespaced"])
            self._discovered.add(api_version)
        return self._resources[(api_version, kind)]

    def kinds(self) -> list[Resource]:
        """Every listable kind the server serves (preferred versions), cluster-scoped and namespaced."""
        found = []
        groups = [("v1", "/api/v1")] + [
            (group["preferredVersion"]["groupVersion"], f"/apis/{group['preferredVersion']['groupVersion']}")
            for group in self.request("GET", "/apis")["groups"]]
        for api_version, path in groups:
            for entry in self.request("GET", path)["resources"]:
                if "/" not in entry["name"] and "list" in entry.get("verbs", []):
                    found.append(Resource(api_version, entry["kind"], entry["name"], entry["namespaced"]))
        return found

    def list(self, resource: Resource, namespace: str | None = None, selector: str | None = None) -> list[dict]:
        query = {"labelSelector": selector} if selector else None
        return self.request("GET", resource.path(namespace), query=query)["items"]

    def create(self, manifest: dict, dry_run: bool = False) -> dict:
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        namespace = manifest.get("metadata", {}).get("namespace")
        return self.request("POST", resource.path(namespace), manifest,
                            query={"dryRun": "All", "fieldValidation": "Strict"} if dry_run else None)

    def patch_status(self, resource: Resource, namespace: str | None, name: str, status: dict) -> dict:
        return self.request("PATCH", resource.path(namespace, name) + "/status", {"status": status},
                            content_type="application/merge-patch+json")

    def watch(self, resource: Resource, namespace: str | None, on_event: Callable[[str, dict], None],
              stop: threading.Event, resource_version: str = "") -> None:
        """Call on_event(type, object) for every change until `stop` is set. The server ends each watch after a few
        seconds (timeoutSeconds), and the next one starts from the last version seen, so no change is missed and
        `stop` is noticed within those seconds."""
        version = resource_version
        while not stop.is_set():
            query = {"watch": "1", "timeoutSeconds": "3", "allowWatchBookmarks": "false"}
            if version:
                query["resourceVersion"] = version
            connection = self._connection(timeout=30)
            try:
                connection.request("GET", f"{resource.path(namespace)}?{urlencode(query)}",
                                   headers={"Accept": "application/json"})
                response = connection.getresponse()
                while not stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # the version is too old: start again from now
                        version = ""
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    on_event(event["type"], event["object"])
            finally:
                connection.close()


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """check()'s first truthy answer within `timeout` seconds, or an AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
