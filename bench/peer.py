#!/usr/bin/env python3
"""The peer of issue 13: the straightforward script an operator could write instead of the
sweeper. Two filtered listings (held HODL payments; succeeded outbound payments within the
lookback) over one keep-alive connection, then the LSP records of their hashes looked up in
batches, and a report of the callbacks missed. It repairs nothing and checks less than
lsp-sweeper: no failed or cancelled legs, no amounts, deadlines, preimages or outbox jobs.
bench/run.sh times it against lsp-sweeper in the steady state; it is not meant for production.

    LSP_SWEEPER_NODE_TOKEN=... peer.py NODE_URL sqlite:PATH|POSTGRES_CONNSTRING [LOOKBACK_DAYS]

Prints one line of JSON: requests, payments listed, records found, missed_claimable,
missed_payment_sent. PostgreSQL is read through `psql` (no driver is installed).
"""
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse

PAGE = 1000
BATCH = 1000
TABLES = [("apay", "async_rotating_invoices"), ("relay", "lightning_send_mappings")]
# The record states a lost callback leaves behind, per callback and flow.
MISSED = {"claimable": {"apay": {"active"}, "relay": {"quoted"}},
          "payment_sent": {"apay": {"outbound_paid"},
                           "relay": {"outbound_pending", "outbound_paid"}}}


class Node:
    def __init__(self, url):
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port)
        self.prefix = parsed.path.rstrip("/")
        self.headers = {"Authorization": "Bearer " + os.environ["LSP_SWEEPER_NODE_TOKEN"]}
        self.requests = 0

    def get(self, path):
        self.conn.request("GET", self.prefix + path, headers=self.headers)
        self.requests += 1
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            sys.exit("peer.py: GET %s: HTTP %d" % (path, response.status))
        return json.loads(body)

    def listing(self, query):
        """Every payment of one filtered listing, newest first."""
        cursor = None
        while True:
            offset = "" if cursor is None else "&index_offset=%d" % cursor
            page = self.get("/listpayments?max_payments=%d%s&%s" % (PAGE, offset, query))
            yield from page["payments"]
            last = page.get("last_index_offset", 0)
            if not page["payments"] or last == 0 or (cursor is not None and last >= cursor):
                return
            cursor = last


def lookup_sqlite(path, hashes):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    found = {}
    for flow, table in TABLES:
        for start in range(0, len(hashes), BATCH):
            batch = hashes[start:start + BATCH]
            marks = ",".join("?" * len(batch))
            for h, status in db.execute("SELECT payment_hash, status FROM %s WHERE payment_hash "
                                        "IN (%s)" % (table, marks), batch):
                found.setdefault(h, []).append((flow, status))
    return found


def lookup_postgres(conn, hashes):
    # One psql session, one statement per batch; the hashes are lowercase hex from the node,
    # checked below, so they can be written as array literals.
    assert all(len(h) == 64 and all(c in "0123456789abcdef" for c in h) for h in hashes)
    script = []
    for flow, table in TABLES:
        for start in range(0, len(hashes), BATCH):
            array = "{" + ",".join(hashes[start:start + BATCH]) + "}"
            script.append("SELECT '%s', payment_hash, status FROM %s WHERE payment_hash = "
                          "ANY('%s'::text[]);" % (flow, table, array))
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", conn],
                         input="\n".join(script), capture_output=True, text=True, check=True)
    found = {}
    for line in out.stdout.splitlines():
        flow, h, status = line.split("\t")
        found.setdefault(h, []).append((flow, status))
    return found


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 64
    node, db = Node(argv[1]), argv[2]
    since = int(time.time()) - int(argv[3] if len(argv) == 4 else 14) * 86400
    listed = {"claimable": [], "payment_sent": []}
    for p in node.listing("status=Claimable&direction=Inbound"):
        if p["payment_type"] == "InboundHodl":
            listed["claimable"].append(p["payment_hash"].lower())
    for p in node.listing("status=Succeeded&direction=Outbound&created_after=%d" % since):
        if p.get("preimage"):
            listed["payment_sent"].append(p["payment_hash"].lower())
    hashes = sorted(set(listed["claimable"]) | set(listed["payment_sent"]))
    if db.startswith("sqlite:"):
        found = lookup_sqlite(db[len("sqlite:"):], hashes)
    else:
        found = lookup_postgres(db, hashes)
    result = {"requests": node.requests, "listed": sum(len(v) for v in listed.values()),
              "records": sum(len(v) for v in found.values())}
    for event, hs in listed.items():
        result["missed_" + event] = sum(
            1 for h in hs for flow, status in found.get(h, []) if status in MISSED[event][flow])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
