-- lsp-sweeper's own schema for the LSP's SQLite file, version 1: what each run did. SQLite has
-- no schemas, so the sweeper's tables sit beside the LSP's with an lsp_sweeper_ prefix (a repair
-- and its audit row then commit in one transaction). Timestamps are UTC text with milliseconds,
-- strftime('%Y-%m-%d %H:%M:%f', 'now'), which sorts and compares as text.
--
-- Applied by `lsp-sweeper migrate`, which runs every file of sql/sqlite/sweeper whose number is
-- above the version recorded in lsp_sweeper_schema_version, in one transaction, and then
-- records that number itself (so no file inserts its own version row). To apply this file by
-- hand instead, run it and then:
--   INSERT INTO lsp_sweeper_schema_version (version) VALUES (1);

-- One row per applied migration file.
CREATE TABLE lsp_sweeper_schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- One row per sweep that may write (dry runs are not recorded): inserted with status
-- 'running' when the sweep starts, completed with its outcome and JSON report at the end.
-- A row left 'running' is a sweep that died before finishing.
CREATE TABLE lsp_sweeper_runs (
    run_id      TEXT    PRIMARY KEY,
    started_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    finished_at TEXT,
    dry_run     INTEGER NOT NULL,  -- 0 or 1
    status      TEXT    NOT NULL,  -- running, ok, divergences, failed
    exit_code   INTEGER,
    report      TEXT               -- JSON
);

-- The audit trail: one row per repair a run attempted, applied or not. applied = 0 is the
-- normal outcome when the LSP's own callback landed between the plan and the apply.
CREATE TABLE lsp_sweeper_actions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT    NOT NULL REFERENCES lsp_sweeper_runs (run_id),
    kind          TEXT    NOT NULL,  -- missed_claimable, missed_payment_sent, missing_outbox_job
    flow          TEXT    NOT NULL,  -- apay, relay
    payment_hash  TEXT    NOT NULL,
    from_status   TEXT,              -- the record's status when the run planned the repair
    to_status     TEXT    NOT NULL,
    outbox_action TEXT    NOT NULL,
    applied       INTEGER NOT NULL,  -- 0 or 1
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- "What did the sweeper ever do to this payment?" is the question operators ask.
CREATE INDEX lsp_sweeper_actions_payment_hash_idx ON lsp_sweeper_actions (payment_hash);
