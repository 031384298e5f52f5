#!/usr/bin/env python3
"""A local stand-in for the Kubernetes rollout of deploy/k8s: two kghost replicas running
config/production.toml behind nginx (the Service), one redis-server, one nats-server -js.

While load runs (authenticated reads, signed Stripe webhooks, stream posts), each replica is
restarted in turn the way the StatefulSet controller does it: out of the upstream (nginx
reload: the endpoint removal), the preStop pause, SIGTERM, wait for the exit, start, wait for
/health/ready, back into the upstream. Then it counts:
  - failed client requests (anything but the expected answer),
  - acknowledged webhooks lost (a 200 whose event is neither in a replica's processed journal
    nor on JetStream) and acknowledged stream events lost (a 202 whose event is not on the
    stream), read back from JetStream with its own API over the NATS protocol,
  - the longest pause a client saw (the slowest request, queueing in nginx included).
Not part of CI. Usage: bench/rolling_restart.py [BUILD_DIR]   (default build/release)
Knobs (env): PRESTOP_S=2 SETTLE_S=6 READ_RPS=80 WEBHOOK_RPS=40 STREAM_RPS=40
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/release"))
PRESTOP_S = float(os.environ.get("PRESTOP_S", 2))
SETTLE_S = float(os.environ.get("SETTLE_S", 6))
READ_RPS = float(os.environ.get("READ_RPS", 80))
WEBHOOK_RPS = float(os.environ.get("WEBHOOK_RPS", 40))
STREAM_RPS = float(os.environ.get("STREAM_RPS", 40))
SECRET = "whsec_rolling_restart_" + uuid.uuid4().hex
CHANNEL = "rolling"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def http_status(port, path):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        return c.getresponse().status
    except OSError:
        return None


# ---- a minimal NATS client: enough for the JetStream API's request/reply --------------------
class Nats:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n')
        self.inbox = "_INBOX." + uuid.uuid4().hex
        self.sock.sendall(f"SUB {self.inbox} 1\r\n".encode())

    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload):
        body = json.dumps(payload).encode()
        self.sock.sendall(f"PUB {subject} {self.inbox} {len(body)}\r\n".encode() + body + b"\r\n")
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                return json.loads(self.exact(int(line.split()[-1])) or b"{}")
            elif line.startswith(b"HMSG "):
                parts = line.split()
                raw = self.exact(int(parts[-1]))
                return json.loads(raw[int(parts[-2]):] or b"{}")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def subject_messages(self, stream, subject):
        """Every message on `subject`, in stream order: [(seq, data bytes)]."""
        out, seq = [], 1
        while True:
            r = self.request(f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq, "next_by_subj": subject})
            if "message" not in r:
                return out
            m = r["message"]
            out.append((m["seq"], base64.b64decode(m.get("data", ""))))
            seq = m["seq"] + 1


# ---- the cluster stand-in -------------------------------------------------------------------
class Stack:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="kghost-roll.")
        self.procs = []
        self.redis_port, self.nats_port = free_port(), free_port()
        self.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self.work], "redis.log")
        self.spawn(["nats-server", "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
                    "-sd", os.path.join(self.work, "nats")], "nats.log")
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.redis_port), "ping"],
                                          capture_output=True).returncode == 0, 20, "redis")
        wait_until(lambda: self.port_open(self.nats_port), 20, "nats")
        self.keys_file = os.path.join(self.work, "keys.jsonl")
        self.read_key = self.mint("tenant_reads")
        self.write_key = self.mint("tenant_streams")
        self.replicas = [{"port": free_port(), "proc": None, "n": i} for i in range(2)]
        for r in self.replicas:
            self.start_replica(r)
        self.nginx_port = free_port()
        self.nginx_dir = os.path.join(self.work, "nginx")
        os.makedirs(self.nginx_dir)
        self.write_upstream(self.replicas)
        with open(os.path.join(self.nginx_dir, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.replace("@DIR@", self.nginx_dir)
                    .replace("@PORT@", str(self.nginx_port)))
        self.nginx = self.spawn(["nginx", "-p", self.nginx_dir + "/", "-e",
                                 os.path.join(self.nginx_dir, "error.log"), "-c",
                                 os.path.join(self.nginx_dir, "nginx.conf"), "-g", "daemon off;"],
                                "nginx.out")
        wait_until(lambda: http_status(self.nginx_port, "/health/ready") == 200, 20, "nginx")

    def spawn(self, argv, log, env=None):
        p = subprocess.Popen(argv, stdout=open(os.path.join(self.work, log), "ab"),
                             stderr=subprocess.STDOUT, env=env, cwd=self.work)
        self.procs.append(p)
        return p

    @staticmethod
    def port_open(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def mint(self, tenant):
        out = subprocess.run([os.path.join(BUILD, "bin/kghost-keys"), "new", "--tenant", tenant,
                              "--user", tenant, "--tier", "ENTERPRISE", "--file", self.keys_file],
                             capture_output=True, text=True, check=True).stdout
        return next(w for w in out.split() if w.startswith("kg_live_"))

    def env(self, r):
        return {"PATH": os.environ["PATH"], "HOME": self.work,
                "KG_LISTEN": f"127.0.0.1:{r['port']}",
                "KG_DATA_DIR": os.path.join(self.work, f"data-{r['n']}"),
                "KG_THREADS": "2",
                "KG_LOG_LEVEL": "warn",
                "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
                "NATS_SERVERS": f"nats://127.0.0.1:{self.nats_port}",
                "STRIPE_WEBHOOK_SECRET": SECRET,
                "KG_STREAM_TOKEN_SECRET": "rolling-restart-token-secret-0123456789",
                "OPENMETER_URL": "http://127.0.0.1:9", "OPENMETER_API_KEY": "unused",
                "KG_KEYS_FILE": self.keys_file}

    def start_replica(self, r):
        r["proc"] = self.spawn([os.path.join(BUILD, "bin/kghost"), "--config",
                                os.path.join(ROOT, "config/production.toml")],
                               f"kghost-{r['n']}.log", env=self.env(r))
        wait_until(lambda: http_status(r["port"], "/health/ready") == 200, 30,
                   f"replica {r['n']} ready")

    def write_upstream(self, members):
        servers = "".join(f"    server 127.0.0.1:{m['port']};\n" for m in members)
        with open(os.path.join(self.nginx_dir, "upstream.conf"), "w") as f:
            f.write(f"upstream kghost {{\n{servers}    keepalive 64;\n}}\n")

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.nginx.pid)], capture_output=True, text=True)
        return set(out.stdout.split())

    def reload(self, members):
        """The endpoint change: rewrite the upstream, reload, wait for the old workers to go."""
        self.write_upstream(members)
        old = self.workers()
        self.nginx.send_signal(signal.SIGHUP)
        wait_until(lambda: not (old & self.workers()), 30, "old nginx workers to exit")

    def roll(self, r):
        others = [m for m in self.replicas if m is not r]
        t0 = time.monotonic()
        self.reload(others)                        # endpoint removed
        time.sleep(PRESTOP_S)                      # the pod's preStop pause
        r["proc"].send_signal(signal.SIGTERM)      # the kubelet's SIGTERM
        code = r["proc"].wait(timeout=60)
        t_exit = time.monotonic()
        self.start_replica(r)                      # the new pod, same volume
        t_ready = time.monotonic()
        self.reload(self.replicas)                 # ready: endpoint added back
        return {"replica": r["n"], "exit_code": code, "drain_s": round(t_exit - t0, 2),
                "restart_to_ready_s": round(t_ready - t_exit, 2)}

    def journals(self):
        ids = set()
        for r in self.replicas:
            d = os.path.join(self.work, f"data-{r['n']}", "webhooks")
            for name in ("processed.log", "processed.1.log"):
                try:
                    ids.update(open(os.path.join(d, name)).read().split())
                except FileNotFoundError:
                    pass
        return ids

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not self.nginx else signal.SIGQUIT)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.work, ignore_errors=True)


NGINX_CONF = """worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path @DIR@/client_body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
    include @DIR@/upstream.conf;
    server {
        listen 127.0.0.1:@PORT@;
        location / {
            proxy_pass http://kghost;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
"""


# ---- load -----------------------------------------------------------------------------------
class Client(threading.Thread):
    """One keep-alive client at a fixed rate. A request that fails on a reused connection before
    any byte of the answer came back (nginx closed the idle connection during its reload) is
    sent again once on a new connection, as HTTP clients do (RFC 9112 §9.3.1); those are counted
    as `reconnects`, everything else that is not the expected answer as a failure."""

    def __init__(self, stack, rps, make, check, stop):
        super().__init__(daemon=True)
        self.stack, self.period, self.make, self.check, self.stop = stack, 1 / rps, make, check, stop
        self.sent = self.failed = self.reconnects = 0
        self.max_latency = 0.0
        self.failures = []
        self.acked = []
        self.conn = None

    def send(self, method, path, body, headers):
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.stack.nginx_port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.conn.close()
                self.conn = None
                if reused and attempt == 0:
                    self.reconnects += 1
                    continue
                return None, repr(e).encode()
            except OSError as e:
                self.conn.close()
                self.conn = None
                return None, repr(e).encode()

    def run(self):
        i = 0
        next_t = time.monotonic()
        while not self.stop.is_set():
            method, path, body, headers, token = self.make(i)
            t0 = time.monotonic()
            status, data = self.send(method, path, body, headers)
            self.max_latency = max(self.max_latency, time.monotonic() - t0)
            self.sent += 1
            ok = self.check(status, data)
            if ok:
                if token is not None:
                    self.acked.append((token, data))
            else:
                self.failed += 1
                if len(self.failures) < 5:
                    self.failures.append((status, data[:200]))
            i += 1
            next_t += self.period
            time.sleep(max(0.0, next_t - time.monotonic()))


def main():
    if not os.path.exists(os.path.join(BUILD, "bin/kghost")):
        sys.exit(f"build kghost first: {BUILD}/bin/kghost is missing")
    stack = Stack()
    run_id = uuid.uuid4().hex[:8]
    try:
        stop = threading.Event()

        def read(i):
            return "GET", "/api/v1/health", None, {"X-API-Key": stack.read_key}, None

        def webhook(i):
            eid = f"evt_roll_{run_id}_{i}"
            body = json.dumps({"id": eid, "type": "invoice.paid", "object": "event",
                               "data": {"object": {"id": f"in_{i}"}}})
            t = str(int(time.time()))
            sig = hmac.new(SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
            return "POST", "/webhooks/stripe", body, {"Stripe-Signature": f"t={t},v1={sig}",
                                                      "Content-Type": "application/json"}, eid

        def stream(i):
            body = json.dumps({"run": run_id, "n": i})
            return "POST", f"/api/v1/streams/{CHANNEL}/events", body, {
                "X-API-Key": stack.write_key, "Content-Type": "application/json"}, i

        def ok_json(status_want, pred):
            def check(status, data):
                try:
                    return status == status_want and pred(json.loads(data))
                except ValueError:
                    return False
            return check

        clients = {
            "reads": [Client(stack, READ_RPS / 2, read,
                             ok_json(200, lambda j: j.get("tenant_id") == "tenant_reads"), stop)
                      for _ in range(2)],
            "webhooks": [Client(stack, WEBHOOK_RPS, webhook,
                                ok_json(200, lambda j: j == {"received": True}), stop)],
            "streams": [Client(stack, STREAM_RPS, stream,
                               ok_json(202, lambda j: "sequence" in j or j.get("queued")), stop)],
        }
        everyone = [c for cs in clients.values() for c in cs]
        for c in everyone:
            c.start()
        started = time.monotonic()
        time.sleep(SETTLE_S)
        rolls = []
        for r in stack.replicas:
            rolls.append(stack.roll(r))
            time.sleep(SETTLE_S)
        stop.set()
        for c in everyone:
            c.join(timeout=60)
        load_s = time.monotonic() - started

        # What was acknowledged must be there: webhooks processed (journal) or on JetStream,
        # stream posts on JetStream.
        acked_webhooks = {tok for tok, _ in clients["webhooks"][0].acked}
        acked_streams = {tok for tok, _ in clients["streams"][0].acked}
        nats = Nats(stack.nats_port)
        on_stream, lost_webhooks = set(), set(acked_webhooks)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msgs = nats.subject_messages("KGENT_EVENTS", f"kgent.tenant.tenant_streams.{CHANNEL}")
            seen = [json.loads(d).get("n") for _, d in msgs if json.loads(d).get("run") == run_id]
            on_stream = set(seen)
            bridged = {json.loads(d).get("id") for _, d in
                       nats.subject_messages("KGENT_EVENTS", "kgent.stripe.invoice.paid")}
            lost_webhooks = acked_webhooks - (stack.journals() | bridged)
            if not lost_webhooks and acked_streams <= on_stream:
                break
            time.sleep(0.5)
        dup_streams = len(seen) - len(set(seen))
        report = {
            "load_s": round(load_s, 1),
            "rolls": rolls,
            "requests": {k: sum(c.sent for c in cs) for k, cs in clients.items()},
            "failed": {k: sum(c.failed for c in cs) for k, cs in clients.items()},
            "stale_keepalive_resends": {k: sum(c.reconnects for c in cs) for k, cs in clients.items()},
            "acknowledged": {"webhooks": len(acked_webhooks), "stream_events": len(acked_streams)},
            "lost": {"webhooks": len(lost_webhooks),
                     "stream_events": len(acked_streams - on_stream)},
            "stream_duplicates": dup_streams,
            "webhooks_in_journals": len(acked_webhooks & stack.journals()),
            "longest_client_pause_ms": round(max(c.max_latency for c in everyone) * 1000, 1),
        }
        samples = [f for c in everyone for f in c.failures]
        if samples:
            report["failure_samples"] = [(s, d.decode(errors="replace")) for s, d in samples[:5]]
        print(json.dumps(report, indent=2))
        bad = sum(report["failed"].values()) + sum(report["lost"].values())
        return 1 if bad else 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
