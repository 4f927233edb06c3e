"""The key helpers' header parsing: the right-most untrusted hop, malformed headers never raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.client.integrations.keys import client_ip, forwarded_chain, trusted

PROXIES = trusted(["10.0.0.0/8", "::1", "127.0.0.1"])


def test_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    assert client_ip("203.0.113.7", None, "1.2.3.4", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "for=1.2.3.4", None, PROXIES) == "203.0.113.7"


def test_x_forwarded_for_right_most_untrusted() -> None:
    xff = "6.6.6.6, 198.51.100.2, 10.1.2.3"  # 6.6.6.6 is what the client claimed
    assert client_ip("10.0.0.1", None, xff, PROXIES) == "198.51.100.2"


def test_forwarded_rfc7239_is_preferred_and_parsed() -> None:
    fwd = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For="10.0.0.9:80"'
    assert client_ip("10.0.0.1", fwd, "9.9.9.9", PROXIES) == "2001:db8:cafe::17"
    assert forwarded_chain("for=192.0.2.60;proto=http;by=203.0.113.43", None) == ["192.0.2.60"]
    assert client_ip("10.0.0.1", "for=192.0.2.43:47011", None, PROXIES) == "192.0.2.43"


def test_obfuscated_and_unknown_hops_are_returned_as_written() -> None:
    assert client_ip("10.0.0.1", 'for="_hidden", for=10.0.0.2', None, PROXIES) == "_hidden"
    assert client_ip("10.0.0.1", None, "unknown", PROXIES) == "unknown"


def test_all_trusted_is_the_origin_and_no_header_is_the_peer() -> None:
    assert client_ip("10.0.0.1", None, "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"
    assert client_ip("10.0.0.1", None, None, PROXIES) == "10.0.0.1"
    assert client_ip("::ffff:10.0.0.1", None, "192.0.2.1", PROXIES) == "192.0.2.1"
    assert client_ip(None, None, "192.0.2.1", PROXIES) is None


header_text = st.text(st.sampled_from('for=[]:;,"\\ _.0123456789abcdef:FOR\t'), max_size=60)


@given(header_text, header_text, st.sampled_from(["10.0.0.1", "192.0.2.1", "::1", "", "junk"]))
def test_malformed_headers_never_raise(fwd: str, xff: str, peer: str) -> None:
    got = client_ip(peer, fwd, xff, PROXIES)
    assert got is None or isinstance(got, str)
    if peer in ("192.0.2.1", "junk"):  # an untrusted peer is always the answer
        assert got == peer


@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=6), st.integers(0, 3))
def test_proxies_appended_after_the_client_are_skipped(hops: list[str], proxies: int) -> None:
    chain = [*hops, *[f"10.0.0.{i + 2}" for i in range(proxies)]]
    got = client_ip("10.0.0.1", None, ", ".join(chain), PROXIES)
    last = hops[-1]
    if not (last.startswith("10.") or last == "127.0.0.1"):
        assert got == last  # the hop the first trusted proxy saw
    else:
        assert got in chain
