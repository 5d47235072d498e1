-- Conversation context (contract §3.4): one row per exchange (the user's turn and the reply),
-- per platform, channel (entity) and user. Trimmed to CONTEXT_HISTORY_LIMIT on every append and
-- to CONTEXT_TTL_S by the maintenance task.
CREATE TABLE ai_conversation_context (
    id            bigserial PRIMARY KEY,
    platform      text NOT NULL,
    entity_id     text NOT NULL,
    user_id       text NOT NULL,
    user_message  text NOT NULL,
    reply         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ai_conversation_context_conversation_idx
    ON ai_conversation_context (platform, entity_id, user_id, created_at DESC);
CREATE INDEX ai_conversation_context_user_idx ON ai_conversation_context (platform, user_id);
CREATE INDEX ai_conversation_context_created_idx ON ai_conversation_context (created_at);
