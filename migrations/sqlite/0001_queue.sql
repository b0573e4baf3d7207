-- The approval queue: requests bound to an exact call, the approvals (signatures) over them,
-- and a hash-chained audit log. Times are epoch milliseconds. SQL kept portable to PostgreSQL
-- where it costs little (TEXT/BIGINT, no SQLite-only types).

CREATE TABLE requests (
    id                 TEXT PRIMARY KEY,
    tool               TEXT NOT NULL,
    environment        TEXT NOT NULL,
    account            TEXT NOT NULL,
    region             TEXT NOT NULL,
    resource_id        TEXT NOT NULL,
    resource_arn       TEXT NOT NULL,
    -- The canonical call (tool, environment, account, region, resource_arn, arguments) as
    -- canonical JSON, and its SHA-256: what approvers sign.
    call_json          TEXT NOT NULL,
    call_hash          TEXT NOT NULL,
    policy_hash        TEXT NOT NULL,
    rule               TEXT NOT NULL,
    approvers_required BIGINT NOT NULL,
    cooldown_ms        BIGINT NOT NULL,
    reason             TEXT NOT NULL,
    client_name        TEXT NOT NULL,
    client_version     TEXT NOT NULL,
    session_id         TEXT NOT NULL,
    -- The resource as airlock saw it when the request was made (JSON).
    resource_json      TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN
        ('pending', 'approved', 'executing', 'executed', 'failed', 'denied', 'cancelled', 'expired')),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    not_before         BIGINT,
    -- Executor bookkeeping: who holds the request, until when, and how far it got.
    lease_owner        TEXT,
    lease_until        BIGINT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    phase              TEXT NOT NULL DEFAULT '',
    backup_id          TEXT,
    backup_copy_id     TEXT,
    outcome            TEXT
);

CREATE INDEX requests_state ON requests (state, not_before);

CREATE TABLE approvals (
    request_id     TEXT NOT NULL REFERENCES requests (id),
    approver       TEXT NOT NULL,
    public_key     TEXT NOT NULL,
    approved_at    BIGINT NOT NULL,
    not_before     BIGINT NOT NULL,
    signature      TEXT NOT NULL,
    PRIMARY KEY (request_id, public_key)
);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          BIGINT NOT NULL,
    request_id  TEXT,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
