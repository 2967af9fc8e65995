-- Releases (issue 19): each promotion of an image (by digest) to a release tag,
-- written in the transaction that records the apply. The drift check compares
-- them with the tags in ECR.
CREATE TABLE releases (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repository   TEXT    NOT NULL,
    tag          TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    request_id   INTEGER NOT NULL REFERENCES requests(id),
    requested_by TEXT    NOT NULL,
    approved_by  TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    -- The request that deleted the repository: its releases stay as history but are no
    -- longer listed (a later repository of the same name starts without releases).
    retired_by   INTEGER REFERENCES requests(id)
);
CREATE INDEX releases_by_repository ON releases (repository, id);
