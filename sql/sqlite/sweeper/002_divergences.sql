-- lsp-sweeper's own schema for SQLite, version 2: divergences that outlive the run that saw
-- them, so an operator is told when one appears, reminded while it lasts and told when it is
-- gone. To apply by hand: run this file, then
--   INSERT INTO lsp_sweeper_schema_version (version) VALUES (2);

-- One row per divergence episode. While resolved_at is NULL the divergence is open: every
-- complete run that sees it again moves last_seen_at. A run that could have seen it and did
-- not sets resolved_at; if it comes back later it is a new row (a new episode).
CREATE TABLE lsp_sweeper_divergences (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,  -- plan::DivergenceKind, e.g. amount_mismatch
    flow            TEXT,              -- apay, relay; NULL for malformed_payment
    payment_hash    TEXT    NOT NULL,  -- as the node sent it (printable, truncated)
    detail          TEXT    NOT NULL,  -- the latest run's wording
    needs_person    INTEGER NOT NULL,  -- the latest run's judgement, 0 or 1
    first_seen_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    last_seen_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    resolved_at     TEXT,
    last_alerted_at TEXT               -- NULL: no alert about it was ever delivered
);

-- At most one open row per (kind, flow, payment_hash).
CREATE UNIQUE INDEX lsp_sweeper_divergences_open_key ON lsp_sweeper_divergences
    (kind, COALESCE(flow, ''), payment_hash) WHERE resolved_at IS NULL;
