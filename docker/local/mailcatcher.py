#!/usr/bin/python3
"""A mail catcher with the slice of Mailpit's API that Bourse's tests use.

SMTP on :1025 keeps every message in memory; HTTP on :8025 answers
GET /api/v1/messages ({"total", "messages": [{"ID", "From", "To", "Subject",
"Created"}]}, newest first), GET /api/v1/message/{ID} (adds "Text" and
"HTML") and GET /readyz. `mailpit readyz` asks /readyz and exits 0 or 1.
"""

import email
import email.policy
import email.utils
import json
import sys
import threading
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

MESSAGES = []
LOCK = threading.Lock()


def address(value):
    name, addr = email.utils.parseaddr(value or "")
    return {"Name": name, "Address": addr}


def part(message, subtype):
    body = message.get_body(preferencelist=(subtype,))
    return body.get_content() if body is not None else ""


class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        summary = {
            "ID": str(uuid.uuid4()),
            "MessageID": message.get("Message-ID", ""),
            "From": address(message.get("From")),
            "To": [address(a) for a in message.get_all("To", [])],
            "Subject": message.get("Subject", ""),
            "Created": datetime.now(timezone.utc).isoformat(),
        }
        full = dict(summary, Text=part(message, "plain"), HTML=part(message, "html"))
        with LOCK:
            MESSAGES.append(full)
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        with LOCK:
            messages = list(reversed(MESSAGES))
        if path == "/readyz":
            self.reply(200, {"ok": True})
        elif path == "/api/v1/messages":
            keys = ("ID", "MessageID", "From", "To", "Subject", "Created")
            listed = [{k: m[k] for k in keys} for m in messages]
            self.reply(200, {"total": len(listed), "messages_count": len(listed), "messages": listed})
        elif path.startswith("/api/v1/message/"):
            wanted = path.rsplit("/", 1)[1]
            found = [m for m in messages if m["ID"] == wanted]
            self.reply(200, found[0]) if found else self.reply(404, {"error": "not found"})
        else:
            self.reply(404, {"error": "not found"})

    def log_message(self, *args):
        pass


def main():
    if sys.argv[1:] == ["readyz"]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:8025/readyz", timeout=2) as r:
                sys.exit(0 if r.status == 200 else 1)
        except OSError:
            sys.exit(1)
    controller = Controller(Handler(), hostname="0.0.0.0", port=1025)
    controller.start()
    print("mailcatcher: SMTP on :1025, HTTP on :8025", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8025), Api).serve_forever()


if __name__ == "__main__":
    main()
