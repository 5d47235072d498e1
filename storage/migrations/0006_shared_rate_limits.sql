-- Rate limits shared by every instance when there is no Redis (contract §3.2, §12): N instances
-- never allow N times the limits. Keys are digests (interactions/shared_limits.py,
-- completions/shared_limits.py): no raw user id or API key is stored. Each check-and-reserve is
-- ONE statement, a call of the functions below, atomic in its own transaction; the time is the
-- server's, so every instance counts with the same clock.

-- Reply limits: a user's row ('u:…') holds the time of their last reply in its channel, a channel's
-- row ('c:…') the times of its replies within the last minute. `expires_at`: when the row can no
-- longer refuse anything (store maintenance deletes it then).
CREATE TABLE ai_rate_limits (
    key         text PRIMARY KEY,
    hits        timestamptz[] NOT NULL DEFAULT '{}',
    expires_at  timestamptz NOT NULL
);

CREATE INDEX ai_rate_limits_expires_idx ON ai_rate_limits (expires_at);

-- NULL: reserved (the channel's window and the user's cooldown are written); else the scope that
-- refused, 'user' or 'channel', and nothing is written. Every caller locks the channel's row first
-- (created when missing), so all replies of one channel, on every instance, pass here one at a time.
CREATE FUNCTION ai_reserve_reply(p_user text, p_channel text, p_cooldown_s float8, p_per_min integer)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    recent  timestamptz[];
    t       timestamptz;
BEGIN
    INSERT INTO ai_rate_limits (key, expires_at) VALUES (p_channel, clock_timestamp())
        ON CONFLICT (key) DO NOTHING;
    SELECT hits INTO recent FROM ai_rate_limits WHERE key = p_channel FOR UPDATE;
    t := clock_timestamp();  -- after the lock: later than any reply reserved before
    IF EXISTS (SELECT 1 FROM ai_rate_limits
               WHERE key = p_user AND hits[1] > t - make_interval(secs => p_cooldown_s)) THEN
        RETURN 'user';
    END IF;
    recent := ARRAY(SELECT h FROM unnest(recent) AS h WHERE h > t - interval '60 seconds' ORDER BY h);
    IF cardinality(recent) >= p_per_min THEN
        RETURN 'channel';
    END IF;
    UPDATE ai_rate_limits SET hits = recent || t, expires_at = t + interval '60 seconds'
        WHERE key = p_channel;
    IF p_cooldown_s > 0 THEN
        INSERT INTO ai_rate_limits (key, hits, expires_at)
            VALUES (p_user, ARRAY[t], t + make_interval(secs => p_cooldown_s))
            ON CONFLICT (key) DO UPDATE SET hits = EXCLUDED.hits, expires_at = EXCLUDED.expires_at;
    END IF;
    RETURN NULL;
END $$;

-- The OpenAI-compatible API's per-key limit (COMPLETIONS_RATE_PER_MIN): a token bucket per key.
CREATE TABLE ai_key_buckets (
    key         text PRIMARY KEY,
    tokens      float8 NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Take one request from the key's bucket (full when new, refilled at p_rate per minute): whether it
-- was allowed and the tokens left.
CREATE FUNCTION ai_take_request(p_key text, p_rate integer, OUT allowed boolean, OUT tokens float8)
LANGUAGE plpgsql AS $$
DECLARE
    was      float8;
    last_at  timestamptz;
    t        timestamptz;
BEGIN
    INSERT INTO ai_key_buckets (key, tokens, updated_at) VALUES (p_key, p_rate, clock_timestamp())
        ON CONFLICT (key) DO NOTHING;
    SELECT b.tokens, b.updated_at INTO was, last_at FROM ai_key_buckets b WHERE b.key = p_key FOR UPDATE;
    t := clock_timestamp();
    tokens := least(p_rate::float8, was + greatest(0, extract(epoch FROM t - last_at)) * p_rate / 60.0);
    allowed := tokens >= 1;
    IF allowed THEN
        tokens := tokens - 1;
    END IF;
    UPDATE ai_key_buckets SET tokens = ai_take_request.tokens, updated_at = t WHERE key = p_key;
END $$;
