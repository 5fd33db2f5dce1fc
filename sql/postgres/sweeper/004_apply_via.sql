-- lsp-sweeper's own schema, version 4: how each repair was applied (README, "Two ways to apply").
-- `--apply db` applies it by the sweeper's own SQL on the LSP's tables, as every earlier version
-- did; `--apply lsp-callbacks` replays the missed callback to the LSP's own endpoint, which
-- applies it by its own rules, and the audit row keeps what the LSP answered.
-- To apply by hand: run this file, then
--   INSERT INTO lsp_sweeper.schema_version (version) VALUES (4);

ALTER TABLE lsp_sweeper.actions
    -- 'db': the sweeper's SQL applied the repair (every row written before this version);
    -- 'lsp_callback': the missed callback was replayed to the LSP, which applied or refused it.
    ADD COLUMN via text NOT NULL DEFAULT 'db' CHECK (via IN ('db', 'lsp_callback')),
    -- A replay's outcome, plan::DeliveryOutcome: applied, already_moved, unconfirmed, ignored,
    -- refused, deferred or failed.
    ADD COLUMN callback_outcome text,
    -- The HTTP status of the LSP's last answer; NULL when there was none (nothing was sent, or
    -- no answer came).
    ADD COLUMN callback_http_status integer,
    -- What the LSP said (the "error" of its JSON, else the body), printable, at most 200 bytes;
    -- NULL when it said nothing.
    ADD COLUMN callback_answer text,
    -- The POSTs made: 0 when the record had already moved and nothing was sent.
    ADD COLUMN callback_attempts integer CHECK (callback_attempts >= 0),
    -- A replay's row has its outcome and attempts; a row of the sweeper's SQL has no callback
    -- column at all.
    ADD CONSTRAINT actions_callback_columns CHECK (CASE via
        WHEN 'lsp_callback' THEN callback_outcome IS NOT NULL AND callback_attempts IS NOT NULL
        ELSE callback_outcome IS NULL AND callback_http_status IS NULL AND callback_answer IS NULL
             AND callback_attempts IS NULL END);
