#!/usr/bin/env python3
"""Soak: mixed traffic at a fixed rate against one kghost, sampling its RSS, open fds and p95.

  bench/soak/soak.py [--build build/release] [--duration 1800] [--rate 100] [--out DIR]

Starts its own redis-server, nats-server -js, a local OpenMeter receiver (answers 204) and a
kghost with every plugin the build has (hello, auth, devkeys, webhooks, streaming, billing when
built, observability with the access log at 1.0, logs to a file). Then, for --duration seconds,
sends --rate requests a second on a fixed schedule:
  60 % authenticated reads        GET  /api/v1/health          (kg_dev_carol)
  20 % signed Stripe webhooks     POST /webhooks/stripe        (unique event ids)
  20 % stream posts               POST /api/v1/streams/soak/events
with one SSE reader on that channel throughout. Every 10 s it writes a row to DIR/soak.csv:
elapsed_s, rss_bytes, open_fds, p95_ms (client-side, that window), requests, errors
(non-2xx or failed), sse_events. At the end it prints the drift between the first and the last
5 minutes (a third of the run each when shorter) and plots the three series into DIR/soak.png
with gnuplot. Targets from the issue: RSS growth < 5 %, p95 drift < 10 %.
"""
import argparse
import csv
import hashlib
import hmac
import http.client
import http.server
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

SECRET = "whsec_soak_secret"
KEY = "kg_dev_carol"
SAMPLE_S = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class OpenMeterReceiver(http.server.BaseHTTPRequestHandler):
    """Accepts every CloudEvents batch with 204, as OpenMeter v1 does."""
    events = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            OpenMeterReceiver.events += len(json.loads(body))
        except ValueError:
            pass
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Window:
    """Latencies and errors of the current sampling window (guarded by lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = 0

    def add(self, seconds, ok):
        with self.lock:
            self.latencies.append(seconds)
            if not ok:
                self.errors += 1

    def take(self):
        with self.lock:
            lat, err = self.latencies, self.errors
            self.latencies, self.errors = [], 0
        return lat, err


def p95(values):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(0.95 * len(v)))]


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                r.read()
                return r.status
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    return 0
        return 0


def signed_webhook(n):
    body = json.dumps({"id": f"evt_soak_{os.getpid()}_{n}", "object": "event",
                       "type": "invoice.paid", "created": int(time.time()),
                       "data": {"object": {"id": f"in_{n}"}}})
    t = int(time.time())
    sig = hmac.new(SECRET.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"}


def sse_reader(port, stop, counter):
    """Keeps one SSE connection open on the soak channel and counts the events it gets."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /api/v1/streams/soak/events HTTP/1.1\r\nHost: soak\r\n"
                      b"Accept: text/event-stream\r\nX-API-Key: " + KEY.encode() + b"\r\n\r\n")
            while not stop.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                counter[0] += data.count(b"\nevent: message\n")
            s.close()
        except OSError:
            time.sleep(0.5)


def worker(port, rate, share, offset, stop, window, counter):
    """Sends its share of the traffic on a fixed schedule (no coordinated omission: a late
    request is sent at once and timed from when it was due)."""
    client = Client(port)
    period = 1.0 / rate
    due = time.monotonic() + offset
    i = 0
    while not stop.is_set():
        now = time.monotonic()
        if now < due:
            time.sleep(min(due - now, 0.5))
            continue
        kind = share[i % len(share)]
        i += 1
        if kind == "read":
            st = client.request("GET", "/api/v1/health", headers={"X-API-Key": KEY})
        elif kind == "webhook":
            with counter["lock"]:
                counter["n"] += 1
                n = counter["n"]
            body, h = signed_webhook(n)
            st = client.request("POST", "/webhooks/stripe", body=body, headers=h)
        else:
            st = client.request("POST", "/api/v1/streams/soak/events",
                                body=json.dumps({"n": i}),
                                headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        window.add(time.monotonic() - due, 200 <= st < 300)
        due += period


def proc_sample(pid):
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def plot(csv_path, png_path):
    if not shutil.which("gnuplot"):
        print("gnuplot not found (Debian gnuplot-nox): no plot")
        return
    script = f"""
set terminal pngcairo size 1000,900
set output '{png_path}'
set datafile separator ','
set key off
set grid
set multiplot layout 3,1 title 'kghost soak'
set ylabel 'RSS (MiB)'
plot '{csv_path}' every ::1 using ($1/60):($2/1048576) with lines lw 2
set ylabel 'open fds'
plot '{csv_path}' every ::1 using ($1/60):3 with lines lw 2
set ylabel 'p95 (ms)'
set xlabel 'minutes'
plot '{csv_path}' every ::1 using ($1/60):4 with lines lw 2
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"plot: {png_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--duration", type=int, default=1800, help="seconds (default 1800)")
    ap.add_argument("--rate", type=float, default=100, help="requests per second (default 100)")
    ap.add_argument("--out", default="bench/soak/out")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kghost-soak.")
    procs = []
    stop = threading.Event()
    try:
        redis_port, nats_port, kg_port = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd",
             os.path.join(work, "nats")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        om = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OpenMeterReceiver)
        threading.Thread(target=om.serve_forever, daemon=True).start()
        if not (wait_port(redis_port) and wait_port(nats_port)):
            sys.exit("soak: redis-server or nats-server did not start")

        plugin_dir = os.path.join(args.build, "bin", "plugins")
        have_billing = os.path.exists(os.path.join(plugin_dir, "kg_billing.so"))
        config = f"""
log_level = "info"
data_dir = "{work}/data"
[server]
threads = 0
[store]
backend = "redis"
redis_url = "redis://127.0.0.1:{redis_port}"
[[plugins]]
name = "hello"
[[plugins]]
name = "auth"
[plugins.config.tiers.ENTERPRISE]
limit = 1000000000
scopes = ["read", "write", "admin"]
[[plugins]]
name = "devkeys"
[[plugins]]
name = "webhooks"
[plugins.config]
secrets = "{SECRET}"
[[plugins]]
name = "streaming"
[plugins.config]
servers = "nats://127.0.0.1:{nats_port}"
"""
        if have_billing:
            config += ('[[plugins]]\nname = "billing"\nrequired = false\n[plugins.config]\n'
                       'url = "${OPENMETER_URL}"\napi_key = "${OPENMETER_API_KEY}"\n')
        config += ('[[plugins]]\nname = "observability"\n[plugins.config]\n'
                   "access_log_sample_rate = 1.0\n")
        cfg_path = os.path.join(work, "kghost.toml")
        with open(cfg_path, "w") as f:
            f.write(config)
        env = dict(os.environ, OPENMETER_URL=f"http://127.0.0.1:{om.server_address[1]}",
                   OPENMETER_API_KEY="om_soak_key")
        log = open(os.path.join(args.out, "kghost.log"), "w")
        kg = subprocess.Popen([os.path.join(args.build, "bin", "kghost"), "--config", cfg_path,
                               "--listen", f"127.0.0.1:{kg_port}"], stderr=log, env=env)
        procs.append(kg)
        if not wait_port(kg_port):
            sys.exit("soak: kghost did not start; see " + log.name)

        window = Window()
        sse_events = [0]
        counter = {"lock": threading.Lock(), "n": 0}
        threading.Thread(target=sse_reader, args=(kg_port, stop, sse_events), daemon=True).start()
        # 4 workers, each a quarter of the rate with the same 60/20/20 mix, staggered.
        share = ["read", "read", "read", "webhook", "stream"]
        threads = [threading.Thread(target=worker, daemon=True,
                                    args=(kg_port, args.rate / 4, share, k / args.rate, stop,
                                          window, counter)) for k in range(4)]
        for t in threads:
            t.start()
        print(f"soak: {args.duration} s at {args.rate:g} req/s against kghost pid {kg.pid} "
              f"(billing {'on' if have_billing else 'not built'}); CSV every {SAMPLE_S} s")

        csv_path = os.path.join(args.out, "soak.csv")
        rows = []
        start = time.monotonic()
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["elapsed_s", "rss_bytes", "open_fds", "p95_ms", "requests", "errors",
                        "sse_events"])
            next_at = start + SAMPLE_S
            while time.monotonic() - start < args.duration:
                time.sleep(max(0, next_at - time.monotonic()))
                next_at += SAMPLE_S
                if kg.poll() is not None:
                    sys.exit(f"soak: kghost exited with {kg.returncode}; see {log.name}")
                lat, err = window.take()
                rss, fds = proc_sample(kg.pid)
                row = [round(time.monotonic() - start), rss, fds, round(p95(lat) * 1000, 3),
                       len(lat), err, sse_events[0]]
                rows.append(row)
                w.writerow(row)
                f.flush()
                print("  " + "  ".join(f"{k}={v}" for k, v in zip(
                    ["t", "rss", "fds", "p95_ms", "req", "err", "sse"], row)), flush=True)
        stop.set()

        span = min(300, args.duration / 3)
        first = [r for r in rows if r[0] <= span]
        last = [r for r in rows if r[0] > rows[-1][0] - span]
        def drift(col):
            a, b = mean([r[col] for r in first]), mean([r[col] for r in last])
            return a, b, (b - a) / a * 100 if a else 0.0
        rss_a, rss_b, rss_d = drift(1)
        fd_a, fd_b, fd_d = drift(2)
        p_a, p_b, p_d = drift(3)
        total = sum(r[4] for r in rows)
        errors = sum(r[5] for r in rows)
        print(f"\nfirst vs last {span:g} s (means of the {SAMPLE_S} s samples):")
        print(f"  RSS      {rss_a / 1048576:8.1f} MiB -> {rss_b / 1048576:8.1f} MiB  "
              f"{rss_d:+6.2f} %  (target < 5 %: {'ok' if rss_d < 5 else 'OVER'})")
        print(f"  open fds {fd_a:8.1f}     -> {fd_b:8.1f}      {fd_d:+6.2f} %")
        print(f"  p95      {p_a:8.3f} ms  -> {p_b:8.3f} ms   {p_d:+6.2f} %  "
              f"(target < 10 %: {'ok' if p_d < 10 else 'OVER'})")
        print(f"  requests {total}, errors {errors}, SSE events received {sse_events[0]}, "
              f"OpenMeter events received {OpenMeterReceiver.events}")
        print(f"csv: {csv_path}")
        plot(csv_path, os.path.join(args.out, "soak.png"))
    finally:
        stop.set()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
