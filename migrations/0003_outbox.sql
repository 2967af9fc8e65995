-- Issue 17: notifications. Every notification is a row written in the same
-- transaction as the change it is about; the sender delivers it, retries it
-- with backoff, and gives up after notify.give_up_after_minutes. `delivery`
-- is a UUID that stays the same across retries, so receivers can drop
-- duplicates (a crash after delivering and before marking it sent delivers
-- again, with the same id).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery        TEXT    NOT NULL UNIQUE,
    channel         TEXT    NOT NULL CHECK (channel IN ('slack', 'webhook', 'email')),
    event           TEXT    NOT NULL,
    request_id      INTEGER,
    -- The message's facts (domain::notify::Notice, JSON) and, for email, the recipients.
    notice          TEXT    NOT NULL,
    recipients      TEXT    NOT NULL DEFAULT '[]',
    -- Set for notices that must go out once only (reminders per period, expiry warnings).
    dedupe          TEXT    UNIQUE,
    created_at      INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- A sender that claimed the row holds it until then.
    claimed_until   INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- The email address an OpenID Connect sign-in carried (requesters hear about their requests there).
ALTER TABLE users ADD COLUMN email TEXT;
