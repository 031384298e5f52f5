#!/usr/bin/env python3
"""A local OpenMeter ingest endpoint for the billing tests and bench.

POST /api/v1/events on the events port validates every batch as OpenMeter would (content type
exactly application/cloudevents-batch+json, Authorization: Bearer KEY, a JSON array of
CloudEvents 1.0 with specversion, id, source, type, subject, an RFC 3339 time and an object
`data`), counts raw deliveries and de-duplicates by id.

A control port (always up) switches the failure mode and reports what arrived:
  POST /mode   body: ok | down | slow | 503 | 429 | 401 | 400 | close
  GET  /stats  {"raw":N,"unique":N,"batches":N,"invalid":N,"by_subject":{…},"last_error":…}
  POST /reset  forgets everything received

usage: openmeter_receiver.py EVENTS_PORT CONTROL_PORT API_KEY
"""
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
REQUIRED = ("specversion", "id", "source", "type", "subject")


class State:
    def __init__(self, key):
        self.key = key
        self.lock = threading.Lock()
        self.mode = "ok"
        self.reset()

    def reset(self):
        self.raw = 0
        self.batches = 0
        self.invalid = 0
        self.ids = set()
        self.by_subject = {}
        self.traceparents = 0
        self.last_error = ""


def validate(events):
    if not isinstance(events, list) or not events:
        return "body is not a non-empty JSON array"
    for e in events:
        if not isinstance(e, dict):
            return "an event is not an object"
        for f in REQUIRED:
            if not isinstance(e.get(f), str) or not e[f]:
                return "event field %s missing or not a non-empty string" % f
        if e["specversion"] != "1.0":
            return "specversion is not 1.0"
        if not isinstance(e.get("time"), str) or not TIME_RE.match(e["time"]):
            return "time is not RFC 3339"
        if e.get("datacontenttype", "application/json") != "application/json":
            return "datacontenttype must be application/json"
        if not isinstance(e.get("data"), dict):
            return "data is not an object"
    return None


def make_handler(state):
    class Events(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body=b""):
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def problem(self, status, detail):
            with state.lock:
                state.last_error = detail
            self.answer(status, json.dumps({"type": "about:blank", "status": status,
                                            "detail": detail}).encode())

        def do_POST(self):
            mode = state.mode
            length = int(self.headers.get("Content-Length", "0"))
            if mode in ("down", "close"):
                if mode == "close" and length > 1:
                    self.rfile.read(length // 2)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            body = self.rfile.read(length)
            if self.path != "/api/v1/events":
                return self.problem(404, "no such route")
            if mode == "slow":
                time.sleep(10)
            if mode in ("503", "429", "401", "400"):
                return self.problem(int(mode), "receiver switched to " + mode)
            if self.headers.get("Content-Type") != "application/cloudevents-batch+json":
                with state.lock:
                    state.invalid += 1
                return self.problem(400, "invalid content type: %r" % self.headers.get("Content-Type"))
            if self.headers.get("Authorization") != "Bearer " + state.key:
                with state.lock:
                    state.invalid += 1
                return self.problem(401, "wrong or missing bearer key")
            try:
                events = json.loads(body)
            except ValueError:
                events = None
            why = validate(events)
            if why:
                with state.lock:
                    state.invalid += 1
                return self.problem(400, why)
            with state.lock:
                state.batches += 1
                state.raw += len(events)
                if self.headers.get("traceparent"):
                    state.traceparents += 1
                for e in events:
                    if e["id"] not in state.ids:
                        state.ids.add(e["id"])
                        state.by_subject[e["subject"]] = state.by_subject.get(e["subject"], 0) + 1
            self.answer(204)

    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with state.lock:
                self.reply({"raw": state.raw, "unique": len(state.ids), "batches": state.batches,
                            "invalid": state.invalid, "by_subject": state.by_subject,
                            "traceparents": state.traceparents, "mode": state.mode,
                            "last_error": state.last_error})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path == "/mode":
                state.mode = body.strip()
                set_listening(state.mode != "down")
            elif self.path == "/reset":
                with state.lock:
                    state.reset()
            self.reply({"mode": state.mode})

    return Events, Control


events_server = None
events_thread = None
events_port = 0
events_handler = None
listen_lock = threading.Lock()


def set_listening(up):
    global events_server, events_thread
    with listen_lock:
        if up and events_server is None:
            events_server = ThreadingHTTPServer(("127.0.0.1", events_port), events_handler)
            events_server.daemon_threads = True
            events_thread = threading.Thread(target=events_server.serve_forever, daemon=True)
            events_thread.start()
        elif not up and events_server is not None:
            events_server.shutdown()
            events_server.server_close()  # connection refused from now on
            events_server = None


def main():
    global events_port, events_handler
    events_port, control_port, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    state = State(key)
    events_handler, control = make_handler(state)
    set_listening(True)
    ctl = ThreadingHTTPServer(("127.0.0.1", control_port), control)
    ctl.daemon_threads = True
    ctl.serve_forever()


if __name__ == "__main__":
    main()
