-- lsp-sweeper's own schema for SQLite, version 4: how each repair was applied (README, "Two ways
-- to apply"). `--apply db` applies it by the sweeper's own SQL on the LSP's tables, as every
-- earlier version did; `--apply lsp-callbacks` replays the missed callback to the LSP's own
-- endpoint, which applies it by its own rules, and the audit row keeps what the LSP answered.
-- To apply by hand: run this file, then
--   INSERT INTO lsp_sweeper_schema_version (version) VALUES (4);

-- 'db': the sweeper's SQL applied the repair (every row written before this version);
-- 'lsp_callback': the missed callback was replayed to the LSP, which applied or refused it.
ALTER TABLE lsp_sweeper_actions ADD COLUMN via TEXT NOT NULL DEFAULT 'db'
    CHECK (via IN ('db', 'lsp_callback'));
-- A replay's outcome, plan::DeliveryOutcome: applied, already_moved, unconfirmed, ignored,
-- refused, deferred or failed.
ALTER TABLE lsp_sweeper_actions ADD COLUMN callback_outcome TEXT;
-- The HTTP status of the LSP's last answer; NULL when there was none (nothing was sent, or no
-- answer came).
ALTER TABLE lsp_sweeper_actions ADD COLUMN callback_http_status INTEGER;
-- What the LSP said (the "error" of its JSON, else the body), printable, at most 200 bytes; NULL
-- when it said nothing.
ALTER TABLE lsp_sweeper_actions ADD COLUMN callback_answer TEXT;
-- The POSTs made: 0 when the record had already moved and nothing was sent. Its CHECK is the
-- row's: a replay's row has its outcome and attempts; a row of the sweeper's SQL has no callback
-- column at all (SQLite adds no table constraint to an existing table).
ALTER TABLE lsp_sweeper_actions ADD COLUMN callback_attempts INTEGER
    CHECK (COALESCE(callback_attempts, 0) >= 0 AND CASE via
        WHEN 'lsp_callback' THEN callback_outcome IS NOT NULL AND callback_attempts IS NOT NULL
        ELSE callback_outcome IS NULL AND callback_http_status IS NULL AND callback_answer IS NULL
             AND callback_attempts IS NULL END);
