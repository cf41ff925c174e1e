"""A local endpoint that speaks SageMaker's JSON protocol (awsJson1_1), for the real boto3.

boto3 finds it through ``AWS_ENDPOINT_URL_SAGEMAKER``; every request is signed with test
credentials, sent as ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON body, and
answered as SageMaker answers: a JSON body, or HTTP 400 with ``{"__type": <code>, "message": ...}``.
It runs in its own thread (boto3 calls block), records every call, and refuses what it is told to.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "123456789012"


class FakeSageMaker:
    def __init__(self) -> None:
        #: (operation, request body) in the order received.
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: The region each request was signed for (from its SigV4 Authorization header).
        self.regions: list[str] = []
        #: operation -> error code to answer with (e.g. "AccessDeniedException").
        self.refuse: dict[str, str] = {}
        #: operation -> the JSON body to answer with (default: {}).
        self.replies: dict[str, Any] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                operation = str(self.headers.get("X-Amz-Target", "")).rpartition(".")[2]
                fake.calls.append((operation, body))
                credential = str(self.headers.get("Authorization", "")).partition("Credential=")[2]
                fake.regions.append(credential.split("/")[2] if credential.count("/") >= 3 else "")
                code = fake.refuse.get(operation)
                if code is not None:
                    reply: Any = {"__type": code, "message": (
                        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/test-role/SageMaker is not "
                        f"authorized to perform: sagemaker:{operation}")}
                    status = 400
                else:
                    reply = fake.replies.get(operation, {})
                    reply = reply(body) if callable(reply) else reply
                    status = 200
                data = json.dumps(reply, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "fake-request")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def operations(self, name: str) -> list[dict[str, Any]]:
        """The request bodies of every `name` call received."""
        return [body for operation, body in self.calls if operation == name]

    def environ(self) -> dict[str, str]:
        """What points the real boto3 at this endpoint, with credentials of its own."""
        return {
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_MAX_ATTEMPTS": "1",  # a refusal answers at once, without botocore's own retries
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
