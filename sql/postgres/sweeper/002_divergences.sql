-- lsp-sweeper's own schema, version 2: divergences that outlive the run that saw them, so
-- an operator is told when one appears, reminded while it lasts and told when it is gone.
-- To apply by hand: run this file, then
--   INSERT INTO lsp_sweeper.schema_version (version) VALUES (2);

-- One row per divergence episode. While resolved_at is NULL the divergence is open: every
-- complete run that sees it again moves last_seen_at. A run that could have seen it and did
-- not sets resolved_at; if it comes back later it is a new row (a new episode).
CREATE TABLE lsp_sweeper.divergences (
    id              bigserial   PRIMARY KEY,
    kind            text        NOT NULL,  -- plan::DivergenceKind, e.g. amount_mismatch
    flow            text,                  -- apay, relay; NULL for malformed_payment
    payment_hash    text        NOT NULL,  -- as the node sent it (printable, truncated)
    detail          text        NOT NULL,  -- the latest run's wording
    needs_person    boolean     NOT NULL,  -- the latest run's judgement
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    last_alerted_at timestamptz            -- NULL: no alert about it was ever delivered
);

-- At most one open row per (kind, flow, payment_hash): the runs' upsert target.
CREATE UNIQUE INDEX divergences_open_key ON lsp_sweeper.divergences
    (kind, COALESCE(flow, ''), payment_hash) WHERE resolved_at IS NULL;
