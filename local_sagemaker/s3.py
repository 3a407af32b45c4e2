"""S3: moto's S3 served in-process, made durable by a journal of the state each request changed.

moto keeps buckets and objects in memory only. After every successful mutating request the
runtime appends to ``<data_dir>/s3-journal/`` what that request left behind (a bucket created or
deleted, an object's bytes + metadata + ETag, an object deleted), fsynced before the client gets
its answer, so state survives ``kill -9``. At start-up the journal is replayed into moto and then
compacted: rewritten as one entry per live bucket and object (bodies hard-linked, not copied).

Persisted: buckets, objects (latest version), Content-Type, user metadata and ETags. Not
persisted: in-progress multipart uploads, tags, ACLs, policies, versioning history.
Requests must use path-style addressing (what botocore does for a custom ``endpoint_url``).

Executors use the in-process helpers (:meth:`S3Service.download`, :meth:`S3Service.upload_file`,
...), which go through the same journal. One S3Service per process: moto's backend is global.
"""

import io
import json
import logging
import os
import shutil
import threading
import xml.etree.ElementTree as ElementTree
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs

from moto.moto_server import werkzeug_app
from moto.s3.models import s3_backends
from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Request

from local_sagemaker.gate import s3_error_response
from local_sagemaker.store import fsync_directory, write_file_atomically

log = logging.getLogger(__name__)

MUTATING_METHODS = {"PUT", "POST", "DELETE"}
# Object sub-resources whose requests do not change the object's bytes or metadata.
MULTIPART_PART_PARAMS = {"partNumber", "uploads"}
# S3's limit on an object key: its UTF-8 encoding, in bytes (moto does not check it).
MAX_KEY_BYTES = 1024


class S3Error(Exception):
    """An in-process S3 helper could not do what was asked (message names bucket and key)."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/prefix`` -> ``("bucket", "key/prefix")``; raises S3Error otherwise."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise S3Error(f"{uri!r} is not an S3 URI (expected s3://bucket/key)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def safe_relative_path(relative: str) -> PurePosixPath:
    """``relative`` as a path that cannot leave the folder it is joined to (no ``..``, no ``/``)."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise S3Error(f"refusing to write {relative!r}: it would land outside the target folder")
    return path


class S3Journal:
    """Append-only, fsynced entries: ``<seq>.json``, plus ``<seq>.body`` for an object."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = [int(p.stem) for p in self.directory.glob("*.json")]
        self._next = max(existing, default=0) + 1

    def entries(self):
        """Yield ``(entry, body_path)`` in write order."""
        for path in sorted(self.directory.glob("*.json"), key=lambda p: int(p.stem)):
            entry = json.loads(path.read_text())
            yield entry, path.with_suffix(".body")

    def append(self, entry: dict, body: bytes | None = None, body_source: Path | None = None):
        """Durably add an entry; an object body is written (or hard-linked) before the entry."""
        sequence = self._next
        self._next += 1
        stem = self.directory / f"{sequence:012d}"
        if body_source is not None:
            os.link(body_source, stem.with_suffix(".body"))
        elif body is not None:
            with open(stem.with_suffix(".body"), "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
        # Atomic: a crash mid-write leaves no torn entry, only an orphan body replay ignores.
        write_file_atomically(stem.with_suffix(".json"), json.dumps(entry).encode())
        return stem.with_suffix(".body")


class S3Service:
    """The runtime's S3 (available to backends as ``self.s3``).

    ``wsgi_app`` serves the S3 REST API; the other public methods are in-process helpers for
    executors. All mutations are serialised by one lock so the journal's order is the order
    moto applied them in.
    """

    def __init__(self, data_dir: Path, region: str, account: str):
        self.region = region
        self.backend = s3_backends[account]["aws"]
        self.backend.reset()
        # moto's server answers every origin's CORS preflight unless told not to; the runtime
        # serves no browser (gate.py). moto reads this flag when it builds the app.
        werkzeug_app.DISABLE_GLOBAL_CORS = True
        self._moto_app = werkzeug_app.create_backend_app("s3")
        self._lock = threading.RLock()
        # (bucket, key) -> journal body file holding the object's current bytes (for compaction).
        self._body_files: dict[tuple[str, str], Path] = {}
        self._journal_dir = Path(data_dir) / "s3-journal"
        self._recover_interrupted_compaction()
        self._replay(S3Journal(self._journal_dir))
        self.journal = self._compact()

    # -- journal replay and compaction ---------------------------------------------------------

    def _recover_interrupted_compaction(self) -> None:
        compacting = self._journal_dir.with_name("s3-journal.compacting")
        old = self._journal_dir.with_name("s3-journal.old")
        if not self._journal_dir.exists():
            if (compacting / "COMPLETE").exists():
                compacting.rename(self._journal_dir)
            elif old.exists():
                old.rename(self._journal_dir)
        for leftover in (compacting, old):
            if leftover.exists():
                shutil.rmtree(leftover)

    def _replay(self, journal: S3Journal) -> None:
        count = 0
        for entry, body_path in journal.entries():
            self._apply(entry, body_path)
            count += 1
        log.info("s3: replayed %d journal entries", count)

    def _apply(self, entry: dict, body_path: Path) -> None:
        bucket, key = entry["bucket"], entry.get("key")
        if entry["op"] == "create_bucket":
            if bucket not in self.backend.buckets:
                self.backend.create_bucket(bucket, entry["region"])
        elif entry["op"] == "delete_bucket":
            self.backend.buckets.pop(bucket, None)
        elif entry["op"] == "put_object":
            stored = self.backend.put_object(
                bucket, key, body_path.read_bytes(), etag=entry["etag"]
            )
            stored.set_metadata(dict(entry["metadata"]), replace=True)
            self._body_files[(bucket, key)] = body_path
        elif entry["op"] == "delete_object":
            self.backend.delete_object(bucket, key)
            self._body_files.pop((bucket, key), None)

    def _compact(self) -> S3Journal:
        compacting = self._journal_dir.with_name("s3-journal.compacting")
        journal = S3Journal(compacting)
        body_files = {}
        for name, bucket in sorted(self.backend.buckets.items()):
            journal.append({"op": "create_bucket", "bucket": name, "region": bucket.region_name})
            for key in sorted(bucket.keys.keys()):
                stored = self.backend.get_object(name, key)
                if stored is None:
                    continue
                source = self._body_files.get((name, key))
                body_files[(name, key)] = journal.append(
                    self._object_entry(name, key, stored),
                    body=None if source else stored.value,
                    body_source=source,
                )
        (compacting / "COMPLETE").touch()
        fsync_directory(compacting)
        old = self._journal_dir.with_name("s3-journal.old")
        self._journal_dir.rename(old)
        compacting.rename(self._journal_dir)
        (self._journal_dir / "COMPLETE").unlink()
        fsync_directory(self._journal_dir.parent)
        shutil.rmtree(old)
        self._body_files = {k: self._journal_dir / v.name for k, v in body_files.items()}
        return S3Journal(self._journal_dir)

    @staticmethod
    def _object_entry(bucket: str, key: str, stored) -> dict:
        return {
            "op": "put_object",
            "bucket": bucket,
            "key": key,
            "etag": stored.etag.strip('"'),
            "metadata": dict(stored.metadata),
        }

    # -- recording what a request changed ------------------------------------------------------

    def _record_object(self, bucket: str, key: str) -> None:
        stored = self.backend.get_object(bucket, key)
        if stored is None:
            self.journal.append({"op": "delete_object", "bucket": bucket, "key": key})
            self._body_files.pop((bucket, key), None)
            return
        entry = self._object_entry(bucket, key, stored)
        self._body_files[(bucket, key)] = self.journal.append(entry, body=stored.value)

    def _record_bucket(self, bucket: str) -> None:
        if bucket in self.backend.buckets:
            region = self.backend.buckets[bucket].region_name
            self.journal.append({"op": "create_bucket", "bucket": bucket, "region": region})
        else:
            self.journal.append({"op": "delete_bucket", "bucket": bucket})

    def _record_request(self, environ, query: dict, body: bytes) -> None:
        """Journal the state a successful path-style request changed (see module docstring)."""
        method = environ["REQUEST_METHOD"]
        # WSGI hands the path over as latin-1; S3 keys are UTF-8.
        path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", errors="surrogateescape")
        bucket, _, key = path.lstrip("/").partition("/")
        if not bucket:
            return
        if not key:
            if "delete" in query and method == "POST":
                for deleted_key in _keys_in_delete_request(body):
                    self._record_object(bucket, deleted_key)
            elif method == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/"):
                self._record_object(bucket, _form_post_key(environ, body))
            elif not query:
                self._record_bucket(bucket)
            return
        if MULTIPART_PART_PARAMS & query.keys():
            return
        if method == "DELETE" and "uploadId" in query:
            return  # AbortMultipartUpload changes no object
        self._record_object(bucket, key)

    # -- WSGI ----------------------------------------------------------------------------------

    def wsgi_app(self, environ, start_response):
        """Serve one S3 REST request through moto, journaling it if it changed state."""
        if environ["REQUEST_METHOD"] not in MUTATING_METHODS:
            return self._moto_app(environ, start_response)
        if unknown := self._unknown_upload(environ):
            # moto answers a KeyError (500) for an upload it does not hold, e.g. one a restart
            # forgot (in-progress uploads are not journaled); S3 answers NoSuchUpload.
            return unknown(environ, start_response)
        if too_long := _key_too_long(environ):
            return too_long(environ, start_response)
        body = Request(environ).get_data()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers, exc_info=exc_info)

        with self._lock:
            response_body = b"".join(self._moto_app(environ, capture))
            if captured["status"].startswith("2"):
                query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
                self._record_request(environ, query, body)
        start_response(captured["status"], captured["headers"], captured["exc_info"])
        return [response_body]

    def _unknown_upload(self, environ):
        """S3's NoSuchUpload answer when the request names an upload id its bucket lacks."""
        upload_id = parse_qs(environ.get("QUERY_STRING", "")).get("uploadId", [None])[0]
        bucket = environ["PATH_INFO"].lstrip("/").partition("/")[0]
        found = self.backend.buckets.get(bucket)
        if upload_id is None or found is None or upload_id in found.multiparts:
            return None
        message = "The specified upload does not exist. The upload ID may be invalid, or the "
        message += "upload may have been aborted or completed."
        return s3_error_response("NoSuchUpload", message, 404, environ["PATH_INFO"])

    # -- in-process helpers for executors ------------------------------------------------------

    def _bucket(self, bucket: str):
        found = self.backend.buckets.get(bucket)
        if found is None:
            raise S3Error(f"s3://{bucket}: the bucket does not exist")
        return found

    def create_bucket(self, bucket: str) -> None:
        """Create a bucket (durably) if it does not exist yet."""
        with self._lock:
            if bucket not in self.backend.buckets:
                self.backend.create_bucket(bucket, self.region)
                self._record_bucket(bucket)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys of live objects in ``bucket`` starting with ``prefix``, sorted."""
        with self._lock:  # a copy: other jobs' uploads and clients' PUTs add keys meanwhile
            keys = list(self._bucket(bucket).keys.keys())
        return sorted(k for k in keys if k.startswith(prefix) and self.exists(bucket, k))

    def exists(self, bucket: str, key: str) -> bool:
        return bucket in self.backend.buckets and self.backend.get_object(bucket, key) is not None

    def read(self, bucket: str, key: str) -> bytes:
        """An object's bytes; raises S3Error naming the URI when it does not exist."""
        self._bucket(bucket)
        stored = self.backend.get_object(bucket, key)
        if stored is None:
            raise S3Error(f"s3://{bucket}/{key}: no such object")
        return stored.value

    def write(self, bucket: str, key: str, body: bytes, content_type: str | None = None) -> None:
        """Create or replace an object (durably) in an existing bucket."""
        self._bucket(bucket)
        with self._lock:
            stored = self.backend.put_object(bucket, key, body)
            if content_type:
                stored.set_metadata({"content-type": content_type})
            self._record_object(bucket, key)

    def upload_file(self, path: Path, s3_uri: str) -> None:
        """Upload a local file to ``s3_uri`` (an object URI)."""
        bucket, key = parse_s3_uri(s3_uri)
        self.write(bucket, key, Path(path).read_bytes())

    def upload_directory(self, directory: Path, s3_prefix_uri: str) -> list[str]:
        """Upload each file under ``directory`` to ``<prefix>/<relative path>``; returns keys."""
        bucket, prefix = parse_s3_uri(s3_prefix_uri.rstrip("/") + "/")
        keys = []
        for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
            key = prefix + path.relative_to(directory).as_posix()
            self.write(bucket, key, path.read_bytes())
            keys.append(key)
        return keys

    def download(self, s3_uri: str, destination: Path) -> list[Path]:
        """Download like a SageMaker S3Prefix channel: every object whose key starts with the
        URI's key, to ``destination/<key without the prefix>`` (an object named exactly by the
        URI keeps its file name). Returns the files written.

        Raises S3Error when nothing matches, or when a key would escape ``destination``.
        """
        bucket, prefix = parse_s3_uri(s3_uri)
        keys = self.list_keys(bucket, prefix)
        if not keys:
            raise S3Error(f"{s3_uri}: no objects under this S3 URI")
        written = []
        for key in keys:
            if key.endswith("/"):
                continue  # a folder marker object
            relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
            target = Path(destination) / safe_relative_path(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read(bucket, key))
            written.append(target)
        return written


def _key_too_long(environ):
    """S3's KeyTooLongError answer for a write whose object key is over MAX_KEY_BYTES; moto
    would store it, and a pipeline that works here would then fail on AWS."""
    # PATH_INFO carries the request's bytes as latin-1 (PEP 3333): its length is the key's.
    key = environ["PATH_INFO"].lstrip("/").partition("/")[2]
    if environ["REQUEST_METHOD"] == "DELETE" or len(key.encode("latin-1")) <= MAX_KEY_BYTES:
        return None
    return s3_error_response("KeyTooLongError", "Your key is too long", 400, environ["PATH_INFO"])


def _form_post_key(environ, body: bytes) -> str:
    """The key a browser form POST wrote: its ``key`` field, ``${filename}`` filled in."""
    _, form, files = parse_form_data({**environ, "wsgi.input": io.BytesIO(body)})
    upload = files.get("file")
    return form["key"].replace("${filename}", upload.filename if upload else "")


def _keys_in_delete_request(body: bytes) -> list[str]:
    """The ``<Key>`` values of a DeleteObjects request body."""
    root = ElementTree.fromstring(body)
    return [element.text or "" for element in root.iter() if element.tag.endswith("Key")]
