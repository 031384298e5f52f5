#!/usr/bin/env python3
"""N distinct, correctly signed Stripe webhook requests for wrk (the peers' stripe_webhook.lua).

The peers' generator (../shared/peers/gen_stripe_requests.py) writes the same lines, but bodies
that differ only in a 7-digit counter. wrk's LuaJIT (Debian's OpenResty branch) hashes a long
string from 8-byte samples at offsets it picks at random per process; when no sample lands on
the counter every body of one length has the same hash, interning them becomes quadratic and
wrk's init() does not finish (seen: over 15 minutes for 600,000 lines). Each event here also
carries the `request.idempotency_key` Stripe events have, 64 random hex characters: longer than
a sampled chunk plus a sample, so every string wrk builds from a line hashes apart.

Output: one request per line, "<Stripe-Signature header value>\t<raw JSON body>"; event ids
"evt_<prefix>_<i>". Signature: t=<unix>,v1=hex(HMAC_SHA256(secret, "<t>.<raw body>")), with the
timestamp taken now (regenerate right before each run: the tolerance is 300 s).
"""

import argparse
import hashlib
import hmac
import json
import secrets
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--secret", default="whsec_test_secret")
    ap.add_argument("--prefix", default="run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    secret = args.secret.encode()
    t = str(int(time.time()))
    with open(args.out, "w", encoding="ascii") as f:
        for i in range(args.n):
            event = {
                "id": f"evt_{args.prefix}_{i:07d}",
                "object": "event",
                "api_version": "2023-10-16",
                "created": int(t),
                "type": "customer.subscription.updated",
                "livemode": False,
                "request": {"id": None, "idempotency_key": secrets.token_hex(32)},
                "data": {
                    "object": {
                        "id": f"sub_{args.prefix}_{i:07d}",
                        "object": "subscription",
                        "customer": "cus_bench",
                        "status": "active",
                        "metadata": {"tenant_id": "user_bob"},
                    }
                },
            }
            body = json.dumps(event, separators=(",", ":"))
            mac = hmac.new(secret, t.encode() + b"." + body.encode(), hashlib.sha256).hexdigest()
            f.write(f"t={t},v1={mac}\t{body}\n")


if __name__ == "__main__":
    main()
