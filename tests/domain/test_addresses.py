"""The order in which a create tries IPv4 addresses: after the region's newest instance's, to the
end of the pools, then round from the start; every address once, gateways never."""

from gpucloud.domain.addresses import ipv4_number, ipv4_text, pool_shape, search_order

A = pool_shape("198.51.100.0/29")  # gateway .1, hands out .2-.6
B = pool_shape("203.0.113.0/30", first="203.0.113.1", last="203.0.113.2", gateway="203.0.113.1")  # only .2
V6 = pool_shape("2400:8904:1::/64")


def order(pools, after):
    return [ipv4_text(number) for _, number in search_order(pools, after)]


def test_a_fresh_region_starts_at_the_first_address_of_the_first_pool():
    assert order([A, V6, B], None) == ["198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5",
                                       "198.51.100.6", "203.0.113.2"]


def test_after_the_newest_to_the_end_then_round_from_the_start():
    assert order([A, B], "198.51.100.4") == ["198.51.100.5", "198.51.100.6", "203.0.113.2", "198.51.100.2",
                                             "198.51.100.3", "198.51.100.4"]
    assert order([A, B], "203.0.113.2") == ["198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5",
                                            "198.51.100.6", "203.0.113.2"]


def test_an_address_outside_every_pool_starts_from_the_beginning():
    assert order([A, B], "192.0.2.7") == order([A, B], None)
    assert order([A], "2400:8904:1::5") == order([A], None)


def test_every_address_once_and_the_pool_it_is_in():
    pools = [pool_shape("10.0.0.0/24"), pool_shape("10.0.1.0/28")]
    seen = list(search_order(pools, "10.0.0.77"))
    assert len(seen) == len({n for _, n in seen}) == sum(p.size for p in pools)
    assert all(ipv4_text(n) in pool and n != int(pool.gateway) for pool, n in seen)
    assert ipv4_number(ipv4_text(seen[0][1])) == ipv4_number("10.0.0.78")


def test_no_ipv4_pool_no_address():
    assert order([V6], None) == [] and order([], "10.0.0.1") == []
