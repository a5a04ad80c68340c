"""The S3 stand-in a rehearsal machine's artefact store talks to (`AWS_ENDPOINT_URL_S3`): the calls the image's AWS
CLI makes for `aws s3 cp` both ways and `aws s3api put-object --if-none-match '*'`, with objects kept as files.

moto's S3 holds every object and multipart part in memory and was killed for it on a 6 GB vLLM venv (20 GB of
RSS), so this one writes to disk. What it serves, path-style (`/BUCKET/KEY`):
- PutObject, with `If-None-Match: *` refused by 412 PreconditionFailed when the key exists (created with a hard
  link, so of two racing writers exactly one wins, as S3's conditional write);
- CreateMultipartUpload, UploadPart, CompleteMultipartUpload (also with `If-None-Match`), AbortMultipartUpload;
- GetObject (with `Range`, which the CLI uses for parallel reads) and HeadObject; ListObjectsV2 (prefix only);
- GCS's JSON API for reads (`/storage/v1/b/...`, `/download/storage/v1/b/...`: bucket, listing, object metadata,
  media with `Range`), which Run:ai's streamer uses in vLLM on GCP machines, over the same objects.
Bodies may come `aws-chunked` (the CLI's streamed checksums); they are decoded. Every request is appended to
`--log` as {"time", "service", "method", "path"} (service "s3", or `--service`'s name: on GCP machines this store
stands behind the rehearsal's `gcloud storage`, tests/rehearsal/machine.py).

`python -m tests.rehearsal.s3 --port P --data DIR --bucket NAME --log FILE`
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import re
import shutil
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
CHUNK = 1 << 20


def _error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}</Message>'
            "</Error>").encode()


class Store:
    """Buckets as folders of DATA; an object's ETag beside it in `.etags/`; uploads in progress in `.uploads/`."""

    def __init__(self, data: Path):
        self.data = data
        self.lock = threading.Lock()

    def bucket(self, name: str) -> Path:
        return self.data / name

    def object_path(self, bucket: str, key: str) -> Path:
        path = (self.bucket(bucket) / "objects" / key).resolve()
        if not str(path).startswith(str(self.bucket(bucket).resolve()) + os.sep):
            raise ValueError(f"key {key!r} leaves the bucket")
        return path

    def etag_path(self, bucket: str, key: str) -> Path:
        return self.bucket(bucket) / "etags" / hashlib.sha256(key.encode()).hexdigest()

    def commit(self, bucket: str, key: str, staged: Path, etag: str, only_if_absent: bool) -> bool:
        """Puts the staged file at KEY; False when `only_if_absent` and KEY exists (nothing changes then)."""
        target = self.object_path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.etag_path(bucket, key).parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            if only_if_absent:
                try:
                    os.link(staged, target)
                except FileExistsError:
                    staged.unlink()
                    return False
                staged.unlink()
            else:
                os.replace(staged, target)
            self.etag_path(bucket, key).write_text(etag)
        return True


class Handler(BaseHTTPRequestHandler):
    store: Store
    log_file: Path
    # The log's name for this store: "s3", or "gcs" where it stands behind the rehearsal's `gcloud storage`.
    service: str
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _log(self) -> None:
        with self.log_file.open("a") as log:
            log.write(json.dumps({"time": time.time(), "service": self.service, "method": self.command,
                                  "path": self.path}) + "\n")

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/xml") -> None:
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        bucket, _, key = url.path.lstrip("/").partition("/")
        return urllib.parse.unquote(bucket), urllib.parse.unquote(key), urllib.parse.parse_qs(
            url.query, keep_blank_values=True)

    def _body_to(self, staged: Path) -> str:
        """The request body into `staged` (aws-chunked decoded); its MD5, the ETag S3 gives a single PUT."""
        remaining = int(self.headers.get("Content-Length") or 0)
        chunked = "aws-chunked" in self.headers.get("Content-Encoding", "") or self.headers.get(
            "x-amz-content-sha256", "").startswith("STREAMING-")
        digest = hashlib.md5()
        with staged.open("wb") as out:
            if not chunked:
                while remaining:
                    block = self.rfile.read(min(CHUNK, remaining))
                    if not block:
                        raise ConnectionError("the body ended early")
                    remaining -= len(block)
                    digest.update(block)
                    out.write(block)
                return digest.hexdigest()
            # aws-chunked: "<hex size>[;chunk-signature=…]\r\n<data>\r\n" … "0…\r\n", trailers, "\r\n".
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return digest.hexdigest()
                left = size
                while left:
                    block = self.rfile.read(min(CHUNK, left))
                    left -= len(block)
                    digest.update(block)
                    out.write(block)
                self.rfile.readline()

    def _staging(self, bucket: str) -> Path:
        folder = self.store.bucket(bucket) / "staging"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / uuid.uuid4().hex

    def _exists(self, bucket: str) -> bool:
        if self.store.bucket(bucket).is_dir():
            return True
        self._send(404, _error("NoSuchBucket", f"The specified bucket does not exist: {bucket}"))
        return False

    # -- verbs ------------------------------------------------------------------------------------------------
    def do_PUT(self) -> None:
        self._log()
        bucket, key, query = self._target()
        if not self._exists(bucket):
            return
        staged = self._staging(bucket)
        md5 = self._body_to(staged)
        if "uploadId" in query:
            upload = self.store.bucket(bucket) / "uploads" / query["uploadId"][0]
            if not upload.is_dir():
                staged.unlink()
                self._send(404, _error("NoSuchUpload", "The specified upload does not exist."))
                return
            staged.rename(upload / f"{int(query['partNumber'][0]):05d}")
            (upload / f"{int(query['partNumber'][0]):05d}.md5").write_text(md5)
            self._send(200, headers={"ETag": f'"{md5}"'})
            return
        if not self.store.commit(bucket, key, staged, f'"{md5}"', self.headers.get("If-None-Match") == "*"):
            self._send(412, _error("PreconditionFailed", "At least one of the pre-conditions you specified did "
                                   "not hold"))
            return
        self._send(200, headers={"ETag": f'"{md5}"'})

    def do_POST(self) -> None:
        self._log()
        bucket, key, query = self._target()
        if not self._exists(bucket):
            return
        if "uploads" in query:
            upload_id = uuid.uuid4().hex
            (self.store.bucket(bucket) / "uploads" / upload_id).mkdir(parents=True)
            self._send(200, (f'<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult '
                             f'xmlns="{NAMESPACE}"><Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>'
                             f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>").encode())
            return
        upload = self.store.bucket(bucket) / "uploads" / query["uploadId"][0]
        listed = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        numbers = [int(n) for n in re.findall(r"<PartNumber>(\d+)</PartNumber>", listed)]
        staged = self._staging(bucket)
        md5s = b""
        with staged.open("wb") as out:
            for number in numbers:
                with (upload / f"{number:05d}").open("rb") as part:
                    shutil.copyfileobj(part, out, CHUNK)
                md5s += bytes.fromhex((upload / f"{number:05d}.md5").read_text())
                # Each part goes once copied: the object then takes its size once on disk, not twice.
                (upload / f"{number:05d}").unlink()
        etag = f'"{hashlib.md5(md5s).hexdigest()}-{len(numbers)}"'
        committed = self.store.commit(bucket, key, staged, etag, self.headers.get("If-None-Match") == "*")
        shutil.rmtree(upload)
        if not committed:
            self._send(412, _error("PreconditionFailed", "At least one of the pre-conditions you specified did "
                                   "not hold"))
            return
        self._send(200, (f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult '
                         f'xmlns="{NAMESPACE}"><Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>'
                         f"<ETag>{escape(etag)}</ETag></CompleteMultipartUploadResult>").encode())

    def do_DELETE(self) -> None:
        self._log()
        bucket, _, query = self._target()
        if "uploadId" in query:
            shutil.rmtree(self.store.bucket(bucket) / "uploads" / query["uploadId"][0], ignore_errors=True)
        self._send(204)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.command == "GET":
            self._log()
        if self.command == "GET" and self.path.startswith(GCS_JSON_PATHS):
            self._gcs_json()
            return
        bucket, key, query = self._target()
        if not self._exists(bucket):
            return
        if not key:
            self._list(bucket, query.get("prefix", [""])[0])
            return
        path = self.store.object_path(bucket, key)
        if not path.is_file():
            self._send(404, b"" if self.command == "HEAD" else _error("NoSuchKey", "The specified key does not "
                                                                       "exist."))
            return
        self._object_data(bucket, key, path)

    def _object_data(self, bucket: str, key: str, path: Path) -> None:
        """The object's bytes, or the `Range` of them asked for (206), as S3 and GCS's media downloads answer."""
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if wanted:
            start, end = int(wanted[1]), min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", self.store.etag_path(bucket, key).read_text())
        self.send_header("Last-Modified", email.utils.formatdate(path.stat().st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as source:
            source.seek(start)
            left = end - start + 1
            while left:
                block = source.read(min(CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)

    def _list(self, bucket: str, prefix: str) -> None:
        root = self.store.bucket(bucket) / "objects"
        keys = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><Size>{(root / k).stat().st_size}</Size>"
            f"<ETag>{escape(self.store.etag_path(bucket, k).read_text())}</ETag>"
            f"<LastModified>{time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime((root / k).stat().st_mtime))}"
            "</LastModified><StorageClass>STANDARD</StorageClass></Contents>"
            for k in keys if k.startswith(prefix))
        self._send(200, (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NAMESPACE}">'
                         f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>"
                         f"{contents.count('<Contents>')}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false"
                         f"</IsTruncated>{contents}</ListBucketResult>").encode())


    # -- GCS's JSON API, for the clients that skip `gcloud` ---------------------------------------------------
    def _gcs_json(self) -> None:
        """What Run:ai's streamer asks of GCS (its Python side through google-cloud-storage at STORAGE_EMULATOR_HOST,
        its C++ side through google-cloud-cpp at CLOUD_STORAGE_EMULATOR_ENDPOINT): a bucket's metadata, a listing by
        prefix, an object's metadata, and its media (`alt=media`, with `Range`), from the same files as S3's."""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        match = re.fullmatch(r"(?:/download)?/storage/v1/b/([^/]+)(?:/o(?:/(.+))?)?", url.path)
        if not match:
            self._send(404, _gcs_error(404, f"not served here: {url.path}"), content_type="application/json")
            return
        bucket, key = urllib.parse.unquote(match[1]), urllib.parse.unquote(match[2] or "")
        if not self.store.bucket(bucket).is_dir():
            self._send(404, _gcs_error(404, "The specified bucket does not exist."), content_type="application/json")
            return
        if "/o" not in url.path:
            self._send(200, json.dumps({"kind": "storage#bucket", "id": bucket, "name": bucket}).encode(),
                       content_type="application/json")
            return
        if not key:
            prefix = query.get("prefix", [""])[0]
            root = self.store.bucket(bucket) / "objects"
            keys = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
            items = [self._gcs_object(bucket, k, root / k) for k in keys if k.startswith(prefix)]
            self._send(200, json.dumps({"kind": "storage#objects", "items": items}).encode(),
                       content_type="application/json")
            return
        path = self.store.object_path(bucket, key)
        if not path.is_file():
            self._send(404, _gcs_error(404, f"No such object: {bucket}/{key}"), content_type="application/json")
        elif query.get("alt") == ["media"]:
            self._object_data(bucket, key, path)
        else:
            self._send(200, json.dumps(self._gcs_object(bucket, key, path)).encode(), content_type="application/json")

    def _gcs_object(self, bucket: str, key: str, path: Path) -> dict:
        stat = path.stat()
        updated = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stat.st_mtime))
        return {"kind": "storage#object", "id": f"{bucket}/{key}/1", "name": key, "bucket": bucket,
                "generation": "1", "metageneration": "1", "contentType": "application/octet-stream",
                "size": str(stat.st_size), "timeCreated": updated, "updated": updated,
                "etag": self.store.etag_path(bucket, key).read_text().strip('"')}


GCS_JSON_PATHS = ("/storage/v1/b/", "/download/storage/v1/b/")


def _gcs_error(code: int, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "errors": [{"message": message}]}}).encode()


def object_file(data: Path, bucket: str, key: str) -> Path:
    """Where the stand-in keeps KEY of BUCKET (for a test to read, or corrupt, what the machine published)."""
    return Store(data).object_path(bucket, key)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal.s3")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--service", default="s3", help="the name each request is logged under")
    args = parser.parse_args()
    store = Store(args.data)
    for bucket in args.bucket:
        store.bucket(bucket).mkdir(parents=True, exist_ok=True)
    handler = type("S3Handler", (Handler,), {"store": store, "log_file": args.log, "service": args.service})
    server = ThreadingHTTPServer(("0.0.0.0", args.port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
