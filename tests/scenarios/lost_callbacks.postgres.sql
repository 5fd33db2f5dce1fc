-- The LSP's side of tests/scenarios/lost_callbacks.json (and legacy.json), PostgreSQL form:
-- the order records whose callbacks the node "lost". Letters and hashes are listed in
-- tests/sim/README.md; lost_callbacks.sqlite.sql holds the same rows for the LSP's SQLite file.
-- Load into an empty database holding the LSP's tables (`lsp-sweeper migrate
-- --with-lsp-schema`) and the relay table of sql/lsp/postgres-relay.sql. Hashes are
-- lowercase, as the LSP stores them (the node serves A's in uppercase).
BEGIN;

-- One APay payer; its rotating invoices below each have their own slot.
INSERT INTO async_orders (peer_pubkey, status, accepted_through_index, current_invoice_slot,
                          current_hash_index)
VALUES ('0339a36013301597daef41fbe593a02cc513d0b55527ec2df1050e2e8ff49c85c2', 'active', 7, 7, 7);

INSERT INTO async_rotating_invoices (order_id, invoice_slot, hash_index, payment_hash, amount_msat,
                                     claimable_at, claim_deadline_height, outbound_pending_at,
                                     outbound_paid_at, expires_at, status)
SELECT o.order_id, r.slot, r.slot, r.payment_hash, r.amount_msat, r.claimable_at,
       r.claim_deadline_height, r.outbound_pending_at, r.outbound_paid_at,
       now() + interval '1 day', r.status
  FROM async_orders o,
       (VALUES
         -- A: the node holds it (Claimable, deadline 800144); the claimable callback was lost.
         (1, 'cf8921b9310989e571ae2e628bad038850b1df34e931dd2750ef52db0140abcd',
          3000000, NULL::timestamptz, NULL::bigint, NULL::timestamptz, NULL::timestamptz,
          'active'),
         -- C: outbound leg paid and recorded; the payment_sent callback (preimage) was lost.
         (2, '6495ebecdb762335a544f9280106de1b3b09f0d0070cacb3604f3c95b34e0b10',
          2000000, now() - interval '43 minutes', 800120,
          now() - interval '42 minutes', now() - interval '8 minutes', 'outbound_paid'),
         -- E: like C, but the node reports a forged preimage: never applied.
         (3, 'cc9801f5e48c40bd007e82d01ae96cc06f23c3322a42b03e4ae8ed1988477799',
          1000000, now() - interval '46 minutes', 800110,
          now() - interval '45 minutes', now() - interval '11 minutes', 'outbound_paid'),
         -- F: Claimable on the node with no claim_deadline_height: reported, not applied.
         (4, '009aa41433d9dd3b8a9edf9b500e7a3e47fb78774d1d60d03435bfa983e62869',
          1500000, NULL, NULL, NULL, NULL, 'active'),
         -- G: the node holds 9999 msat where this record expects 4000000: amount mismatch.
         (5, '9e69286439aaee04ab1e355816c3c791e73e8c6bff593caf00c200b2f481adce',
          4000000, NULL, NULL, NULL, NULL, 'active'),
         -- I: Claimable on the node only 5 s ago: left to the next sweep.
         (6, '3d28ac7c045567582a970ebcc00d2920024199453bebac6b3a72285e05e34618',
          2500000, NULL, NULL, NULL, NULL, 'active'),
         -- J: claimable, but its request_outbound_invoice outbox job is missing (not on the node).
         (7, 'cdd02497627be911c368a2463ec79580e4fe61466caa3c4f5368580a5e669e97',
          7000000, now() - interval '20 minutes', 800160, NULL, NULL, 'claimable')
       ) AS r (slot, payment_hash, amount_msat, claimable_at, claim_deadline_height,
               outbound_pending_at, outbound_paid_at, status)
 WHERE o.peer_pubkey = '0339a36013301597daef41fbe593a02cc513d0b55527ec2df1050e2e8ff49c85c2';

INSERT INTO lightning_send_mappings (payment_hash, outbound_invoice, outbound_amount_msat,
                                     payee_pubkey, inbound_invoice, inbound_amount_msat,
                                     status, claim_deadline_height, expires_at)
VALUES
  -- B: the node holds the inbound HTLC (deadline 800100); the claimable callback was lost.
  ('bc49f64f96fdb6022951640b1eb18634de7ec58f0c1fc2f4bf08c95ecb9c6ee6', 'lnbcrt49u1demo-b',
   4990000, '02552e4c0ab80b007d1e3cddb5dec9de984585785c9c0d9f90f66dc3ddedb61f8b',
   'lnbcrt50u1demo-b-in', 5000000, 'quoted', NULL, now() + interval '1 hour'),
  -- D: the outbound payment succeeded; the payment_sent callback was lost.
  ('4ca96a98be55393f3e85847b3fed84d95a2ae189bf93b41ffb5a644abf3ccf7e', 'lnbcrt59u1demo-d',
   5990000, '020e2a3e8fb3f0ff6348a2e51d622f0655dbf8b26b45ef0df9a6d52a9ec1e2fea5',
   'lnbcrt60u1demo-d-in', 6000000, 'outbound_pending', 800115, now() + interval '1 hour');

-- The jobs the callbacks that did arrive left behind, already drained by the LSP.
INSERT INTO async_rotating_invoice_outbox (payment_hash, action, status, attempts)
VALUES ('6495ebecdb762335a544f9280106de1b3b09f0d0070cacb3604f3c95b34e0b10',
        'request_outbound_invoice', 'done', 1),
       ('cc9801f5e48c40bd007e82d01ae96cc06f23c3322a42b03e4ae8ed1988477799',
        'request_outbound_invoice', 'done', 1),
       ('4ca96a98be55393f3e85847b3fed84d95a2ae189bf93b41ffb5a644abf3ccf7e',
        'lightning_send_pay_outbound', 'done', 1);

COMMIT;
