-- The reply outbox (contract §6): a reply ready for the router waits in its interaction's row,
-- status 'sending' with the reply in `reply`, under the lease of the instance delivering it
-- (renewed like a worker's). A 'sending' row whose lease ran out belongs to a dead instance (or
-- was parked by a full outbox) and is taken by another instance's outbox; the queue never claims
-- it again. Delivered, refused, given up or expired: the row is 'done' with that outcome, and its
-- reply is dropped with the rest of its content.
ALTER TABLE ai_interaction_queue DROP CONSTRAINT ai_interaction_queue_status_check;
ALTER TABLE ai_interaction_queue ADD CONSTRAINT ai_interaction_queue_status_check
    CHECK (status IN ('queued', 'working', 'sending', 'done'));
ALTER TABLE ai_interaction_queue ADD COLUMN reply jsonb;

CREATE INDEX ai_interaction_queue_sending_idx
    ON ai_interaction_queue (accepted_at) WHERE status = 'sending';
