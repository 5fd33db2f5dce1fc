#!/usr/bin/env python3
"""Generates a node history for the simulator and the LSP records that match it.

    gen.py node  N                 > scenario.json   node payments, newest 10% recent
    gen.py lsp   N LOST RECORDS    > records.sql     LSP rows; LOST: fraction of lost callbacks

Deterministic: payment i (1 = oldest) always gets the same hash, preimage, amount and status,
so the node file and the records of every lost fraction line up without sharing state.

The newest 10% of the history was created within the last 13 days (inside the sweep's default
14-day lookback); the rest between 15 and 365 days ago. Of the recent payments, 40% are held
HODL payments (Claimable, the claimable callback) and 40% succeeded outbound payments with a
preimage (the payment_sent callback); each of these has an LSP record, half APay, half relay.
The other recent ones and the old ones cover every direction and status and have no record, or
a settled one. A record whose callback was "lost" is still in the state before it; the others
are in the state after it with its outbox job.
"""
import hashlib
import sys

HEIGHT = 800000
DAY = 86400
PAYEE = "020502f0ea2a233189759274ce5d78e96826223018d03289278c9e88e06920ec32"


def preimage(i):
    return hashlib.sha256(b"bench:%d" % i).digest()


def payment_hash(i):
    return hashlib.sha256(preimage(i)).hexdigest()


def recent_count(n):
    return n // 10


def kind(i, n):
    """What payment i is: ('claimable'|'sent'|other, payment_type, status)."""
    mix = (i * 7919) % 20
    if i > n - recent_count(n):
        if mix < 8:
            return "claimable", "InboundHodl", "Claimable"
        if mix < 16:
            return "sent", "Outbound", "Succeeded"
        return "other", *[("Outbound", "Failed"), ("InboundHodl", "Cancelled"),
                          ("InboundAutoClaim", "Pending"), ("InboundHodl", "Claiming")][mix - 16]
    return "other", *[("InboundAutoClaim", "Succeeded"), ("Outbound", "Succeeded"),
                      ("InboundHodl", "Succeeded"), ("Outbound", "Failed"),
                      ("InboundHodl", "Cancelled"), ("Outbound", "Pending")][mix % 6]


def created_ago(i, n):
    recent = recent_count(n)
    if i > n - recent:  # newest last: 2 min .. 13 days ago
        return 120 + (n - i) * (13 * DAY) // max(recent, 1)
    return 15 * DAY + (n - recent - i) * (350 * DAY) // max(n - recent, 1)


def amount(i):
    return 1000 * (1 + (i * 31) % 5000)


def lost(i, fraction):
    return (i * 2654435761) % 1000 < fraction * 1000


def node(n):
    out = sys.stdout
    out.write('{"description": "bench/gen.py node %d", "dialect": "paginated", '
              '"height": %d, "payments": [\n' % (n, HEIGHT))
    for i in range(1, n + 1):
        what, ptype, status = kind(i, n)
        ago = created_ago(i, n)
        pre = preimage(i).hex() if status in ("Succeeded", "Claiming") else None
        out.write('{"index": %d, "payment_hash": "%s", "payment_type": "%s", "status": "%s", '
                  '"amt_msat": %d, "asset_id": null, "asset_amount": null, "created_ago": %d, '
                  '"updated_ago": %d, "payee_pubkey": "%s", "preimage": %s, '
                  '"description_hash": null}%s\n'
                  % (i, payment_hash(i), ptype, status, amount(i), ago, ago - 30, PAYEE,
                     '"%s"' % pre if pre else "null", "," if i < n else ""))
    out.write("]}\n")


def lsp(n, fraction, records):
    """COPY data for both record tables and the outbox, as one psql script."""
    apay, relay, outbox = [], [], []
    for i in range(max(1, n - recent_count(n) + 1), n + 1):
        what, _, _ = kind(i, n)
        if what == "other":
            continue
        h = payment_hash(i)
        is_apay = i % 2 == 0
        missed = lost(i, fraction)
        if what == "claimable":
            status = ("active" if is_apay else "quoted") if missed else "claimable"
            action = "request_outbound_invoice" if is_apay else "lightning_send_pay_outbound"
            pre = "\\N"
        else:
            status = ("outbound_paid" if is_apay else "outbound_pending") if missed \
                else "outbound_claimed"
            action = "claim_inbound_invoice" if is_apay else "lightning_send_claim_inbound"
            pre = "\\N" if missed else preimage(i).hex()
        (apay if is_apay else relay).append((h, amount(i), status, pre))
        if not missed:
            outbox.append((h, action))
    # Settled history: hashes of the oldest node payments first, then of none at all.
    i = 1
    while len(apay) + len(relay) < records:
        h = payment_hash(i) if i <= n - recent_count(n) else payment_hash(-i)
        (apay if i % 2 == 0 else relay).append(
            (h, amount(i), "inbound_claimed" if i % 2 == 0 else "settled", preimage(i).hex()))
        i += 1

    out = sys.stdout
    out.write("BEGIN;\nINSERT INTO async_orders (peer_pubkey, status) VALUES ('%s', 'active');\n"
              % PAYEE.replace("02", "03", 1))
    out.write("COPY async_rotating_invoices (order_id, invoice_slot, payment_hash, amount_msat, "
              "status, payment_preimage, claim_deadline_height, expires_at) FROM stdin;\n")
    for slot, (h, amt, status, pre) in enumerate(apay):
        out.write("1\t%d\t%s\t%d\t%s\t%s\t%d\t2030-01-01\n" % (slot, h, amt, status, pre, HEIGHT + 144))
    out.write("\\.\nCOPY lightning_send_mappings (payment_hash, inbound_amount_msat, status, "
              "payment_preimage, claim_deadline_height) FROM stdin;\n")
    for h, amt, status, pre in relay:
        out.write("%s\t%d\t%s\t%s\t%d\n" % (h, amt, status, pre, HEIGHT + 144))
    out.write("\\.\nCOPY async_rotating_invoice_outbox (payment_hash, action, status) FROM stdin;\n")
    for h, action in outbox:
        out.write("%s\t%s\tdone\n" % (h, action))
    out.write("\\.\nCOMMIT;\nANALYZE;\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "node":
        node(int(argv[2]))
    elif len(argv) == 5 and argv[1] == "lsp":
        lsp(int(argv[2]), float(argv[3]), int(argv[4]))
    else:
        sys.stderr.write(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
