-- Break glass (issue 18): a request an admin applied at once, without the
-- quorum, waits for another admin's review (accepted, or reverted by a new
-- request). Who broke the glass and why are in the audit trail (`break_glass`).
ALTER TABLE requests ADD COLUMN review_pending INTEGER NOT NULL DEFAULT 0;
