-- Requests (new repository, production grant/revoke, restore). `status` changes only through the domain
-- state machine (app/src/domain/request.rs); the service writes it with a
-- compare-and-set on the previous status, so two racing decisions cannot both win.
CREATE TABLE requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL CHECK (kind IN ('create_repository', 'grant_production', 'revoke_production', 'restore_repository')),
    repository       TEXT    NOT NULL,             -- full name, e.g. crytera/templateistio
    payload          TEXT    NOT NULL,             -- JSON RequestKind: what is asked for
    justification    TEXT    NOT NULL,
    requester        TEXT    NOT NULL,             -- principal id, e.g. local:alice, or system:worker
    status           TEXT    NOT NULL CHECK (status IN ('pending','approved','applying','applied','rejected','failed','needs_reapproval')),
    created_at       INTEGER NOT NULL,             -- unix milliseconds, UTC
    updated_at       INTEGER NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_comment TEXT,
    approved_policy  TEXT,                         -- the live repository policy when approved (JSON; 'null': none)
    failure          TEXT,                         -- why the last apply failed, in words
    attempts         INTEGER NOT NULL DEFAULT 0,   -- apply attempts started
    retries          INTEGER NOT NULL DEFAULT 0,   -- consecutive attempts that failed with a temporary AWS error
    not_before       INTEGER,                      -- unix ms: a deferred retry waits until then
    lease_owner      TEXT,                         -- the worker that holds the apply
    lease_until      INTEGER,                      -- after this, another worker may resume it
    result           TEXT                          -- JSON ApplyResult once applied
);

-- At most one open request per repository: a duplicate submission fails here
-- even when two arrive at the same instant.
CREATE UNIQUE INDEX requests_one_open_per_repository
    ON requests (repository) WHERE status IN ('pending', 'approved', 'applying', 'needs_reapproval');
CREATE INDEX requests_by_status ON requests (status, id);
CREATE INDEX requests_by_requester ON requests (requester, id);

-- The audit trail. Written in the same transaction as the change it records;
-- append-only (the triggers below refuse edits and deletions), and
-- tamper-evident: each event carries the SHA-256 of its canonical encoding
-- chained to the previous event's hash (see server/src/audit.rs), so editing,
-- deleting, inserting or reordering rows behind the portal's back is detected
-- by `ecr-portal audit verify`. Ids are consecutive (assigned by the writer).
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,              -- unix milliseconds, UTC
    actor           TEXT    NOT NULL,              -- principal id or system:worker
    action          TEXT    NOT NULL,              -- AuditAction, snake_case
    request_id      INTEGER REFERENCES requests (id),
    repository      TEXT,
    detail          TEXT    NOT NULL DEFAULT '',
    aws_request_ids TEXT    NOT NULL DEFAULT '[]', -- JSON array of AWS request ids
    prev_hash       TEXT    NOT NULL,              -- the previous event's hash (64 zeros for the first)
    hash            TEXT    NOT NULL               -- SHA-256 hex of prev_hash + canonical encoding
);
CREATE INDEX audit_by_actor ON audit_events (actor, id);
CREATE INDEX audit_by_action ON audit_events (action, id);
CREATE INDEX audit_by_repository ON audit_events (repository, id);
CREATE INDEX audit_by_request ON audit_events (request_id, id);
CREATE INDEX audit_by_time ON audit_events (at, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

-- Server-side sessions. Only the SHA-256 of the cookie value is stored, so a
-- copy of the database does not let anyone sign in.
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    user_name  TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('requester', 'admin')),
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL                    -- absolute limit
);

-- What the portal approved for each repository it manages: the source of
-- truth that drift checks compare the live state with.
CREATE TABLE repositories (
    name              TEXT    PRIMARY KEY,          -- full name
    spec              TEXT,                          -- JSON RepositorySpec approved; NULL: settings not managed
    production_access INTEGER NOT NULL DEFAULT 0,   -- 1: the portal's pull statement must be in the policy
    production_until  INTEGER,                       -- unix ms: a temporary grant ends then
    request_id        INTEGER REFERENCES requests (id), -- the last request that changed it
    adopted_at        INTEGER,                       -- set when adopted from outside the portal
    drift             TEXT    NOT NULL DEFAULT '[]', -- JSON list of differences at the last check
    checked_at        INTEGER                        -- unix ms of the last drift check
);
CREATE INDEX repositories_by_grant_end ON repositories (production_until) WHERE production_access = 1;
