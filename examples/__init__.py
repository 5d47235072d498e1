"""`make demo`: a fake LLM, a multilingual chat and the replay tool (docs: README, "make demo")."""
