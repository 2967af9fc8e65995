-- Issue 18: a requester can withdraw a request that waits for a decision
-- (status `withdrawn`), and the kinds of the coming issues are allowed. SQLite cannot change a CHECK constraint in place, so
-- the table is rebuilt as SQLite documents it: copied whole, the old one
-- dropped and the new one renamed, its indexes made again. The portal runs
-- migrations with foreign keys off and checks them all afterwards
-- (`db::migrate`), so the keys that point at `requests` (approvals, audit
-- events, repositories) are checked once the same ids exist again.
CREATE TABLE requests_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    -- update_repository, delete_repository (issue 18) and promote_image (issue 19) are allowed
    -- now, so those issues need no second rebuild.
    kind             TEXT    NOT NULL CHECK (kind IN ('create_repository', 'grant_production', 'revoke_production', 'restore_repository',
                                                      'update_repository', 'delete_repository', 'promote_image')),
    repository       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    justification    TEXT    NOT NULL,
    requester        TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending','approved','applying','applied','rejected','failed','needs_reapproval','withdrawn')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_comment TEXT,
    approved_policy  TEXT,
    failure          TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    retries          INTEGER NOT NULL DEFAULT 0,
    not_before       INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    result           TEXT
);
INSERT INTO requests_new (id, kind, repository, payload, justification, requester, status, created_at, updated_at,
                          decided_by, decided_at, decision_comment, approved_policy, failure, attempts, retries,
                          not_before, lease_owner, lease_until, result)
    SELECT id, kind, repository, payload, justification, requester, status, created_at, updated_at,
           decided_by, decided_at, decision_comment, approved_policy, failure, attempts, retries,
           not_before, lease_owner, lease_until, result
    FROM requests;
DROP TABLE requests;
ALTER TABLE requests_new RENAME TO requests;
CREATE UNIQUE INDEX requests_one_open_per_repository
    ON requests (repository) WHERE status IN ('pending', 'approved', 'applying', 'needs_reapproval');
CREATE INDEX requests_by_status ON requests (status, id);
CREATE INDEX requests_by_requester ON requests (requester, id);

-- Issue 18: a deleted repository's record is kept here (what was approved for it
-- until then), and leaves `repositories`, so a later repository of the same name
-- starts a record of its own.
CREATE TABLE deleted_repositories (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    deleted_at INTEGER NOT NULL,
    request_id INTEGER REFERENCES requests (id),
    record     TEXT    NOT NULL                -- the record as it was (JSON)
);
CREATE INDEX deleted_repositories_by_name ON deleted_repositories (name, id);
