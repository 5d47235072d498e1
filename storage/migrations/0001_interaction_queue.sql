-- The durable interaction queue (contract §2, §3) and its dedupe keys.
-- A row is 'queued' until a worker claims it ('working', with a lease that the worker renews),
-- then 'done' with its outcome. A 'working' row whose lease ran out belongs to a dead instance
-- and is claimable again. Finished rows keep no message text or user id; they are pruned after
-- QUEUE_RETENTION_S.
CREATE TABLE ai_interaction_queue (
    id           uuid PRIMARY KEY,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'working', 'done')),
    payload      jsonb,
    request_id   text NOT NULL,
    platform     text,
    user_id      text,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner  text,
    lease_until  timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    outcome      text,
    finished_at  timestamptz
);

CREATE INDEX ai_interaction_queue_pending_idx
    ON ai_interaction_queue (accepted_at) WHERE status IN ('queued', 'working');
CREATE INDEX ai_interaction_queue_user_idx
    ON ai_interaction_queue (platform, user_id) WHERE status IN ('queued', 'working');
CREATE INDEX ai_interaction_queue_finished_idx
    ON ai_interaction_queue (finished_at) WHERE status = 'done';

-- One row per dedupe key (router message id, or session + type + content hash) for
-- DEDUPE_WINDOW_S: the primary key makes "first one wins" atomic across instances.
CREATE TABLE ai_interaction_dedupe (
    key             text PRIMARY KEY,
    interaction_id  uuid NOT NULL,
    expires_at      timestamptz NOT NULL
);

CREATE INDEX ai_interaction_dedupe_expires_idx ON ai_interaction_dedupe (expires_at);
