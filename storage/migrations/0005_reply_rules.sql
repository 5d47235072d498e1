-- Per-community reply rules (contract §4, §3 step 12, §7): the trigger languages (replace the
-- global ones), the model per trigger or event type (merged key by key over the global ones), and
-- the reply blocklist (added to the global one). NULL inherits.
ALTER TABLE ai_module_config
    ADD COLUMN trigger_languages text[],
    ADD COLUMN model_by_trigger  jsonb,
    ADD COLUMN reply_blocklist   text[];
