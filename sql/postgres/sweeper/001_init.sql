-- lsp-sweeper's own schema, version 1: what each run did, kept apart from the LSP's tables.
--
-- Applied by `lsp-sweeper migrate`, which runs every file of sql/sweeper whose number is
-- above the version recorded in lsp_sweeper.schema_version, in one transaction, and then
-- records that number itself (so no file inserts its own version row). To apply this file
-- by hand instead, run it and then:
--   INSERT INTO lsp_sweeper.schema_version (version) VALUES (1);

CREATE SCHEMA IF NOT EXISTS lsp_sweeper;

-- One row per applied migration file.
CREATE TABLE lsp_sweeper.schema_version (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per sweep that may write (dry runs are not recorded): inserted with status
-- 'running' when the sweep starts, completed with its outcome and JSON report at the end.
-- A row left 'running' is a sweep that died before finishing.
CREATE TABLE lsp_sweeper.runs (
    run_id      text        PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    dry_run     boolean     NOT NULL,
    status      text        NOT NULL,  -- running, ok, divergences, failed
    exit_code   integer,
    report      jsonb
);

-- The audit trail: one row per repair a run attempted, applied or not. applied = false is
-- the normal outcome when the LSP's own callback landed between the plan and the apply.
CREATE TABLE lsp_sweeper.actions (
    id            bigserial   PRIMARY KEY,
    run_id        text        NOT NULL REFERENCES lsp_sweeper.runs (run_id),
    kind          text        NOT NULL,  -- missed_claimable, missed_payment_sent, missing_outbox_job
    flow          text        NOT NULL,  -- apay, relay
    payment_hash  text        NOT NULL,
    from_status   text,                  -- the record's status when the run planned the repair
    to_status     text        NOT NULL,
    outbox_action text        NOT NULL,
    applied       boolean     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- "What did the sweeper ever do to this payment?" is the question operators ask.
CREATE INDEX actions_payment_hash_idx ON lsp_sweeper.actions (payment_hash);
