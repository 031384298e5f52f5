#!/usr/bin/env python3
"""SSE side of bench/run_streaming_bench.sh (stdlib only).

  fanout  PORT CLIENTS SECONDS      : CLIENTS SSE clients count events delivered while the
                                      shell script drives POSTs with wrk; prints events/s
  latency PORT CLIENTS RATE SECONDS : CLIENTS SSE clients; one publisher POSTs RATE msg/s with
                                      its send time in the body; prints p50/p99/max ms of
                                      publish->SSE over every client's deliveries
"""
import asyncio, json, socket, sys, time, http.client

CH = "bench"

async def sse_client(port, counts, idx, lat, ready, stop):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    w.write(f"GET /api/v1/streams/{CH}/events HTTP/1.1\r\nHost: x\r\nX-Test-Tenant: bench\r\n\r\n".encode())
    await w.drain()
    buf = b""
    subscribed = False
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(r.read(1 << 20), 0.5)
        except asyncio.TimeoutError:
            continue
        if not chunk:
            break
        now = time.time_ns()
        if not subscribed and b": subscribed" in chunk:
            subscribed = True
            ready.append(idx)
        n = chunk.count(b"event: message")
        counts[idx] += n
        if lat is not None and n:
            buf += chunk
            while True:
                i = buf.find(b'data: {"t":')
                if i < 0:
                    buf = buf[-64:]
                    break
                j = buf.find(b"}", i)
                if j < 0:
                    buf = buf[i:]
                    break
                lat.append((now - int(buf[i + 11:j])) / 1e6)
                buf = buf[j + 1:]
    w.close()

async def run_clients(port, clients, seconds, with_latency, publisher=None):
    counts = [0] * clients
    lat = [] if with_latency else None
    ready, stop = [], asyncio.Event()
    tasks = [asyncio.create_task(sse_client(port, counts, i, lat, ready, stop)) for i in range(clients)]
    t0 = time.time()
    while len(ready) < clients and time.time() - t0 < 30:
        await asyncio.sleep(0.01)
    print(f"# {len(ready)}/{clients} SSE clients subscribed", file=sys.stderr, flush=True)
    open("/tmp/kg-sse-ready", "w").write("1")
    start_counts = sum(counts)
    t0 = time.time()
    if publisher:
        await asyncio.get_running_loop().run_in_executor(None, publisher)
    else:
        await asyncio.sleep(seconds)
    await asyncio.sleep(0.5)  # the tail in flight
    elapsed = time.time() - t0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sum(counts) - start_counts, elapsed, lat

def main():
    mode, port, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "fanout":
        seconds = float(sys.argv[4])
        n, el, _ = asyncio.run(run_clients(port, clients, seconds, False))
        print(f"fanout clients={clients} delivered={n} events/s={n / (el - 0.5):.0f}")
    else:
        rate, seconds = int(sys.argv[4]), float(sys.argv[5])
        def publish():
            c = http.client.HTTPConnection("127.0.0.1", port)
            total = int(rate * seconds)
            t0 = time.perf_counter()
            for k in range(total):
                target = t0 + k / rate
                d = target - time.perf_counter()
                if d > 0:
                    time.sleep(d)
                c.request("POST", f"/api/v1/streams/{CH}/events", body=json.dumps({"t": time.time_ns()}),
                          headers={"X-Test-Tenant": "bench", "Content-Type": "application/json"})
                c.getresponse().read()
        n, el, lat = asyncio.run(run_clients(port, clients, seconds, True, publish))
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        print(f"latency clients={clients} rate={rate}/s delivered={n} p50_ms={q(0.5):.2f} "
              f"p99_ms={q(0.99):.2f} max_ms={lat[-1]:.2f}")

main()
