-- Issue 4: sign-in through OpenID Connect, the auditor role, API tokens and
-- approval policies with several approvers.

-- Sessions gain the auditor role and the user's groups (for the approval
-- policy). Sessions are short-lived, so the table is recreated: everyone
-- signs in again after this migration.
DROP TABLE sessions;
CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,                -- SHA-256 of the cookie value; the value itself is never stored
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL                    -- absolute limit
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Everyone who has signed in, as of their last sign-in: sessions and API
-- tokens take the role and groups from here, so a group removed at the
-- identity provider takes effect for tokens at the user's next sign-in.
CREATE TABLE users (
    id           TEXT    PRIMARY KEY,              -- local:alice or oidc:<sub>@<issuer host and path>
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('requester', 'admin', 'auditor')),
    groups       TEXT    NOT NULL DEFAULT '[]',    -- JSON array
    last_sign_in INTEGER NOT NULL
);

-- API tokens for pipelines. Only the SHA-256 of the secret is stored; the
-- secret is shown once, at creation.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash  TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL CHECK (scope IN ('submit', 'user')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id, id);

-- Approvals of the current round of a request (a request sent back for
-- re-approval starts a new round: its earlier approvals are removed here and
-- stay in the audit trail). One per approver.
CREATE TABLE approvals (
    request_id INTEGER NOT NULL REFERENCES requests (id),
    approver   TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    comment    TEXT,
    PRIMARY KEY (request_id, approver)
);

-- OpenID Connect sign-ins in progress: state, nonce and PKCE verifier, bound
-- to the browser by a short-lived cookie whose SHA-256 is the key. Used once.
CREATE TABLE oidc_logins (
    binding_hash  TEXT    PRIMARY KEY,
    state         TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    next          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
