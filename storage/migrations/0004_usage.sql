-- Token usage per community, provider, model and UTC day; community 0 is "no community".
CREATE TABLE ai_usage (
    community_id       integer NOT NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    day                date NOT NULL,
    requests           bigint NOT NULL DEFAULT 0,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (community_id, provider, model, day)
);

CREATE INDEX ai_usage_day_idx ON ai_usage (day);
