"""Which base_url a community may name (§5): the rules of llm/upstream.py, one row per case.

Host names other than `localhost` go through a stand-in resolver (a table), so the tests need no
DNS; `localhost` and the numeric forms are resolved by the system, as in production."""

from __future__ import annotations

import socket

import pytest

from config.community import redact_url
from llm.upstream import allowed_hosts, system_resolver, url_problem

DNS = {
    "llm.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "rebind.example.com": ["93.184.216.34", "10.0.0.5"],  # one bad address is enough to refuse
    "metadata-alias.example.com": ["169.254.169.254"],
    "internal.example.com": ["fd12:3456::1"],
}


async def table_resolver(host: str, port: int) -> list[str]:
    if host in DNS:
        return DNS[host]
    return await system_resolver(host, port) if host in ("localhost",) or host[0].isdigit() else []


REFUSED = [
    # (url, what the reason says)
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
    ("http://168.63.129.16/", "metadata"),  # Azure's wireserver: a public address, refused by name
    ("http://100.100.100.200/", "metadata"),  # Alibaba
    ("http://metadata-alias.example.com/", "metadata"),  # a name resolving to the metadata address
    ("http://127.0.0.1:11434", "loopback"),
    ("http://127.9.9.9/", "loopback"),
    ("http://[::1]:8000/v1", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
    ("http://localhost:11434", "resolves to"),  # system DNS: loopback
    ("http://LOCALHOST./", "loopback"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
    ("http://127.1/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.10:8000", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://internal.example.com/", "private"),
    ("http://rebind.example.com/v1", "private"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://100.64.0.1/", "not a globally routable"),  # CGNAT
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),  # NAT64 around 169.254.169.254
    ("https://user:hunter2@llm.example.com/v1", "credentials"),
    ("https://user@llm.example.com/v1", "credentials"),
    ("https://llm.example.com/v1?api_key=hunter2", "query"),
    ("https://llm.example.com/v1#frag", "fragment"),
    ("ftp://llm.example.com/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("llm.example.com", "http:// or https://"),
    ("http://llm.example.com\t/", "control characters"),
    ("http:///v1", "must name a host"),
    ("http://llm.example.com:0/", "port 0"),
    ("http://llm.example.com:99999/", "not a valid URL"),
    ("http://nowhere.example.com/", "does not resolve"),
]


@pytest.mark.parametrize("url,reason", REFUSED, ids=[u for u, _ in REFUSED])
async def test_a_url_breaking_the_rules_is_refused_with_its_reason(url, reason):
    problem = await url_problem(url, allowed_hosts(["llm.other.example"]), table_resolver)
    assert problem is not None and reason in problem
    assert "hunter2" not in problem


ACCEPTED = [
    "https://llm.example.com",
    "https://llm.example.com/v1",
    "http://v6.example.com:8080/",
    "https://93.184.216.34/v1",
    "http://[2606:2800:220:1:248:1893:25c8:1946]/",
]


@pytest.mark.parametrize("url", ACCEPTED)
async def test_a_public_endpoint_is_accepted(url):
    assert await url_problem(url, frozenset(), table_resolver) is None


@pytest.mark.parametrize("allowed,url", [
    ("127.0.0.1", "http://127.0.0.1:11434"),
    ("localhost", "http://localhost:11434"),
    ("LocalHost.", "http://localhost:11434/"),
    ("::1", "http://[::1]:8000"),
    ("ollama.internal", "http://ollama.internal:11434"),  # named: not even resolved
    ("10.0.0.7", "https://10.0.0.7/v1"),
])
async def test_a_host_named_in_allowed_upstream_hosts_skips_the_address_rules(allowed, url):
    assert await url_problem(url, allowed_hosts([allowed]), table_resolver) is None
    assert await url_problem(url, frozenset(), table_resolver) is not None


async def test_allowed_hosts_never_excuse_credentials_or_another_scheme():
    allowed = allowed_hosts(["127.0.0.1"])
    assert "credentials" in await url_problem("http://a:b@127.0.0.1/", allowed, table_resolver)
    assert "http://" in await url_problem("ftp://127.0.0.1/", allowed, table_resolver)


async def test_a_resolver_that_fails_refuses_the_host():
    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    assert "does not resolve" in await url_problem("https://llm.example.com", frozenset(), failing)


async def test_the_system_resolver_finds_localhost():
    assert {"127.0.0.1", "::1"} & set(await system_resolver("localhost", 80))


@pytest.mark.parametrize("stored,shown", [
    ("http://admin:hunter2@169.254.169.254/latest", "http://***@169.254.169.254/latest"),
    ("https://llm.example.com/v1?key=hunter2#x", "https://llm.example.com/v1?***#***"),
    ("https://llm.example.com/v1", "https://llm.example.com/v1"),
    (None, None),
])
def test_a_stored_url_is_shown_without_its_credentials(stored, shown):
    assert redact_url(stored) == shown
