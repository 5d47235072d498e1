-- Per-community configuration (contract §7). A NULL column inherits the global value;
-- community_id 0 holds overrides of the global settings for every community.
-- The provider API key is stored encrypted (Fernet, CONFIG_ENCRYPTION_KEY), never in clear.
CREATE TABLE ai_module_config (
    community_id                 integer PRIMARY KEY CHECK (community_id >= 0),
    provider                     text,
    model                        text,
    temperature                  double precision,
    max_tokens                   integer,
    system_prompt                text,
    base_url                     text,
    api_key_encrypted            text,
    user_cooldown_s              double precision,
    channel_max_replies_per_min  integer,
    triggers                     jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at                   timestamptz NOT NULL DEFAULT now()
);
