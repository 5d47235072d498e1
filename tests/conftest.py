"""Shared fixtures: the loopback fakes (tests/fakes), Redis (tests/redis_fixtures.py) and helpers to run the app."""

pytest_plugins = ["tests.fakes.llm_fixtures", "tests.fakes.router_fixtures", "tests.observability.spans",
                  "tests.redis_fixtures"]
