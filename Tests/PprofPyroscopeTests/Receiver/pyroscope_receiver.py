#!/usr/bin/env python3
"""A loopback stand-in for Pyroscope's ingestion endpoints, for the exporter's tests.

POST /push.v1.PusherService/Push  decoded with classes protoc generates from pyroscope_push.proto
POST /ingest                      the legacy multipart form, decoded with the standard email parser
GET  /received                    every request so far, as JSON (profiles base64)
POST /mode                        how to answer from now on: {"mode": "ok" | "status" | "hang" |
                                  "slow", "status": 500, "delay": 2.0, "message": "..."}

Prints "port N" on its first line once it listens.
"""
import base64
import email.parser
import email.policy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
generated = tempfile.mkdtemp(prefix="pyroscope-receiver-")
subprocess.run(
    [sys.executable, "-m", "grpc_tools.protoc", "-I", here, "--python_out", generated,
     os.path.join(here, "pyroscope_push.proto")],
    check=True,
)
sys.path.insert(0, generated)
import pyroscope_push_pb2  # noqa: E402

lock = threading.Lock()
received = []
mode = {"mode": "ok"}


def decode_push(body):
    request = pyroscope_push_pb2.PushRequest()
    request.ParseFromString(body)
    return {
        "series": [
            {
                "labels": [[pair.name, pair.value] for pair in series.labels],
                "samples": [
                    {"id": sample.ID, "profile": base64.b64encode(sample.raw_profile).decode()}
                    for sample in series.samples
                ],
            }
            for series in request.series
        ]
    }


def decode_ingest(content_type, body):
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("not a multipart form")
    parts = {}
    for part in message.iter_parts():
        parts[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True)
    if "profile" not in parts:
        raise ValueError("no profile part")
    config = parts.get("sample_type_config")
    return {
        "profile": base64.b64encode(parts["profile"]).decode(),
        "sample_type_config": json.loads(config) if config else None,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/received":
            with lock:
                body = json.dumps(received).encode()
            self.answer(200, body)
        else:
            self.answer(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/mode":
            with lock:
                mode.clear()
                mode.update(json.loads(body))
            self.answer(200, b"{}")
            return
        with lock:
            current = dict(mode)
        if current["mode"] == "hang":
            time.sleep(3600)
            return
        if current["mode"] == "status":
            message = current.get("message", "test failure")
            self.answer(current.get("status", 500), json.dumps({"code": "unknown", "message": message}).encode())
            return
        if current["mode"] == "slow":
            time.sleep(current.get("delay", 2.0))
        url = urllib.parse.urlsplit(self.path)
        record = {
            "path": url.path,
            "query": dict(urllib.parse.parse_qsl(url.query)),
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "time": time.time(),
        }
        try:
            if url.path == "/push.v1.PusherService/Push":
                if self.headers.get("Content-Type") != "application/proto":
                    raise ValueError("push needs application/proto")
                record.update(decode_push(body))
            elif url.path == "/ingest":
                record.update(decode_ingest(self.headers.get("Content-Type", ""), body))
            else:
                self.answer(404)
                return
        except Exception as error:  # a request the real server would reject
            self.answer(400, json.dumps({"code": "invalid_argument", "message": str(error)}).encode())
            return
        with lock:
            received.append(record)
        self.answer(200, b"{}", "application/proto" if url.path.startswith("/push") else "application/json")


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
