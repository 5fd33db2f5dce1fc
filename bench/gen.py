#!/usr/bin/env python3
"""The "realistic month" of issue 13: a node history for the simulator and the LSP's records.

    gen.py node N [RECORDS LOST]    > scenario.json   the node's payments (node-simulator --scenario)
    gen.py lsp  N [RECORDS LOST]    > records.sql     the LSP's rows, for sqlite3 or psql
    gen.py callbacks N [RECORDS LOST] > hashes.txt    late payment_sent callbacks (lsp-writer --hashes)

N node payments created over the last 30 days, and RECORDS LSP records (default 20,000; in a
history too short for them, as at 10k payments, only the finished orders are fewer):
- finished orders (RECORDS - LOST - RECORDS/100): APay `inbound_claimed` / relay `settled`, each
  with its two node payments (InboundHodl Succeeded, Outbound Succeeded with the preimage) and
  its outbox jobs `done`, spread over the 30 days;
- RECORDS/100 unpaid invoices: APay `active` / relay `quoted`, half with no node payment, half
  with an InboundHodl Pending one;
- LOST (default RECORDS/10) lost `payment_sent` callbacks of the last two hours: the record at
  APay `outbound_paid` / relay `outbound_pending`, the node holding the inbound HTLC
  (InboundHodl Claimable) and its Outbound Succeeded with the preimage;
- the rest of the N payments: other traffic in every direction and status, with no record.
Half of the orders of each kind are APay, half relay. Deterministic: the same arguments always
give the same bytes (hashes and times included; times are seconds before the simulator loads
the file). The SQL is one transaction of multi-row INSERTs that both sqlite3 and psql run, on
tables made by `lsp-sweeper migrate --with-lsp-schema` (+ sql/lsp/postgres-relay.sql on
PostgreSQL). Only the LSP's tables are written.
"""
import hashlib
import random
import sys
import time

HEIGHT = 800000
DAY = 86400
MONTH = 30 * DAY
PAYEE = "020502f0ea2a233189759274ce5d78e96826223018d03289278c9e88e06920ec32"
# Other traffic: (payment_type, status, weight). Held HTLCs without a record are rare.
OTHER = [("InboundAutoClaim", "Succeeded", 300), ("Outbound", "Succeeded", 300),
         ("Outbound", "Failed", 100), ("InboundAutoClaim", "Failed", 50),
         ("InboundHodl", "Succeeded", 50), ("InboundHodl", "Cancelled", 50),
         ("InboundAutoClaim", "Pending", 50), ("Outbound", "Pending", 30),
         ("InboundHodl", "Pending", 30), ("InboundHodl", "Claiming", 20),
         ("InboundHodl", "Failed", 19), ("InboundHodl", "Claimable", 1)]


def counts(n, argv):
    """(finished, unpaid, lost): the month's orders, fewer finished ones in a short history."""
    records = int(argv[0]) if argv else 20000
    lost = int(argv[1]) if len(argv) > 1 else records // 10
    unpaid = records // 100
    # Each finished or lost order has two node payments, half the unpaid ones have one.
    room = (n - 2 * lost - unpaid // 2) // 2
    finished = min(records - lost - unpaid, room)
    if finished < 0:
        sys.exit("gen.py: %d lost orders do not fit in %d node payments" % (lost, n))
    return finished, unpaid, lost


def preimage(key):
    return hashlib.sha256(b"bench13:" + key.encode()).hexdigest()


def payment_hash(pre):
    return hashlib.sha256(bytes.fromhex(pre)).hexdigest()


def inbound_amount(k):
    return 10000 + 1000 * (k % 5000)


def orders(n, argv):
    """(kind, k, flow, hash, preimage) of every LSP record, kinds finished/unpaid/lost."""
    finished, unpaid, lost = counts(n, argv)
    out = []
    for kind, count in (("finished", finished), ("unpaid", unpaid), ("lost", lost)):
        for k in range(count):
            pre = preimage("%s:%d" % (kind, k))
            out.append((kind, k, "apay" if k % 2 == 0 else "relay", payment_hash(pre), pre))
    return out


def order_agos(n, argv):
    """Seconds ago each order's inbound payment was created; None when the node has none."""
    rng = random.Random(13)
    agos = {}
    for kind, k, _, h, _ in orders(n, argv):
        if kind == "unpaid":
            agos[h] = rng.randrange(60, 2 * DAY) if k % 4 < 2 else None
        else:
            agos[h] = rng.randrange(7200, MONTH) if kind == "finished" else rng.randrange(600, 7200)
    return agos


def node(n, argv):
    rng = random.Random(17)
    agos = order_agos(n, argv)
    pays = []  # (created_ago, payment_type, status, hash, amt_msat, preimage or None)
    for kind, k, _, h, pre in orders(n, argv):
        amt = inbound_amount(k)
        if kind == "unpaid":
            if agos[h] is not None:
                pays.append((agos[h], "InboundHodl", "Pending", h, amt, None))
            continue
        ago = agos[h]
        inbound = "Succeeded" if kind == "finished" else "Claimable"
        pays.append((ago, "InboundHodl", inbound, h, amt, pre if inbound == "Succeeded" else None))
        pays.append((ago - 300, "Outbound", "Succeeded", h, amt - 10000, pre))
    weights = [w for _, _, w in OTHER]
    for i in range(n - len(pays)):
        ptype, status, _ = rng.choices(OTHER, weights)[0]
        pre = preimage("other:%d" % i)
        pays.append((rng.randrange(60, MONTH), ptype, status, payment_hash(pre),
                     1000 * rng.randrange(1, 100000), pre if status == "Succeeded" else None))
    pays.sort(key=lambda p: -p[0])  # oldest first: the node's storage index grows with time
    out = sys.stdout
    out.write('{"description": "bench/gen.py node %d", "dialect": "paginated", '
              '"height": %d, "payments": [\n' % (n, HEIGHT))
    last = len(pays)
    for i, (ago, ptype, status, h, amt, pre) in enumerate(pays, 1):
        out.write('{"index": %d, "payment_hash": "%s", "payment_type": "%s", "status": "%s", '
                  '"amt_msat": %d, "asset_id": null, "asset_amount": null, "created_ago": %d, '
                  '"updated_ago": %d, "payee_pubkey": "%s", "preimage": %s, '
                  '"description_hash": null}%s\n'
                  % (i, h, ptype, status, amt, ago, ago - 60, PAYEE,
                     '"%s"' % pre if pre else "null", "," if i < last else ""))
    out.write("]}\n")


# Record status and outbox jobs (all done) by kind and flow.
STATE = {("finished", "apay"): ("inbound_claimed", ["request_outbound_invoice",
                                                    "send_outbound_payment",
                                                    "claim_inbound_invoice"]),
         ("finished", "relay"): ("settled", ["lightning_send_pay_outbound",
                                             "lightning_send_claim_inbound"]),
         ("unpaid", "apay"): ("active", []),
         ("unpaid", "relay"): ("quoted", []),
         ("lost", "apay"): ("outbound_paid", ["request_outbound_invoice", "send_outbound_payment"]),
         ("lost", "relay"): ("outbound_pending", ["lightning_send_pay_outbound"])}


def insert(out, head, rows):
    for start in range(0, len(rows), 500):
        out.write(head + " VALUES\n" + ",\n".join(rows[start:start + 500]) + ";\n")


def lsp(n, argv):
    apay, relay, jobs = [], [], []
    agos = order_agos(n, argv)
    now = int(time.time())
    for kind, k, flow, h, pre in orders(n, argv):
        status, actions = STATE[(kind, flow)]
        # The LSP writes the record before its invoice is paid: 10 minutes before the payment
        # (a day ago for an invoice never paid), in SQLite's UTC text form.
        created = time.strftime("%Y-%m-%d %H:%M:%S",
                                time.gmtime(now - (agos[h] if agos[h] is not None else DAY) - 600))
        amt = inbound_amount(k)
        known = "'%s'" % pre if kind == "finished" else "NULL"
        deadline = "NULL" if kind == "unpaid" else str(HEIGHT + 144)
        if flow == "apay":
            apay.append("(1, %d, %d, '%s', %d, %s, %s, '2030-01-01 00:00:00', '%s', '%s')"
                        % (len(apay) + 1, len(apay) + 1, h, amt, deadline, known, status,
                           created))
        else:
            relay.append("('%s', 'lnbc-out-%s', %d, '%s', 'lnbc-in-%s', %d, %s, %s, "
                         "'2030-01-01 00:00:00', '%s', '%s')"
                         % (h, h[:16], amt - 10000, PAYEE, h[:16], amt, deadline, known, status,
                            created))
        jobs += ["('%s', '%s', 'done')" % (h, a) for a in actions]
    out = sys.stdout
    out.write("BEGIN;\nINSERT INTO async_orders (peer_pubkey, status) VALUES ('%s', 'active');\n"
              % PAYEE.replace("02", "03", 1))
    insert(out, "INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, "
           "payment_hash, amount_msat, claim_deadline_height, payment_preimage, expires_at, status, "
           "created_at)",
           apay)
    insert(out, "INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, "
           "outbound_amount_msat, payee_pubkey, inbound_invoice, inbound_amount_msat, "
           "claim_deadline_height, payment_preimage, expires_at, status, created_at)", relay)
    insert(out, "INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status)", jobs)
    out.write("COMMIT;\n")


def callbacks(n, argv):
    """Every tenth lost callback, arriving late while the sweeper repairs the same records."""
    for kind, k, _, h, pre in orders(n, argv):
        if kind == "lost" and k % 10 == 0:
            sys.stdout.write("payment_sent %s %s\n" % (h, pre))


def main(argv):
    modes = {"node": node, "lsp": lsp, "callbacks": callbacks}
    if len(argv) in (3, 5) and argv[1] in modes:
        modes[argv[1]](int(argv[2]), argv[3:])
        return 0
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
