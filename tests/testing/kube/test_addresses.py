"""The loopback address pool: unique, never 127.0.0.1, released addresses come back last."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from podidentity.testing.kube._addresses import (
    NODE_NETWORK,
    POD_NETWORK,
    AddressExhaustedError,
    AddressPool,
)


def test_addresses_are_unique_loopback_and_not_the_emulators_own() -> None:
    pool = AddressPool(POD_NETWORK)
    got = [pool.allocate(f"pod-{i}") for i in range(600)]
    assert len(set(got)) == 600
    for address in got:
        ip = ipaddress.ip_address(address)
        assert ip.is_loopback
        assert ip in POD_NETWORK
        assert address != "127.0.0.1"
        assert not address.endswith((".0", ".255"))


def test_pod_and_node_networks_do_not_overlap_and_avoid_127_0_0_1() -> None:
    assert not POD_NETWORK.overlaps(NODE_NETWORK)
    assert ipaddress.ip_address("127.0.0.1") not in POD_NETWORK
    assert ipaddress.ip_address("127.0.0.1") not in NODE_NETWORK


def test_the_same_owner_keeps_its_address() -> None:
    pool = AddressPool("127.10.0.0/24")
    assert pool.allocate("a") == pool.allocate("a")
    assert len(pool) == 1


def test_a_released_address_is_not_handed_out_again_at_once() -> None:
    pool = AddressPool("127.10.0.0/24")
    first = pool.allocate("a")
    assert pool.release("a") == first
    assert first not in pool
    assert pool.allocate("b") != first
    assert pool.release("nobody") is None


def test_an_exhausted_pool_says_so_and_recovers_after_a_release() -> None:
    pool = AddressPool("127.10.0.0/29")  # .1 to .7 usable
    held = [pool.allocate(str(i)) for i in range(7)]
    with pytest.raises(AddressExhaustedError):
        pool.allocate("one too many")
    pool.release("3")
    assert pool.allocate("late") == held[3]


def test_the_pool_never_contains_127_0_0_1() -> None:
    pool = AddressPool("127.0.0.0/29")
    got = {pool.allocate(str(i)) for i in range(6)}
    assert "127.0.0.1" not in got
    with pytest.raises(ValueError, match="usable"):
        pool.reserve("x", "127.0.0.1")


def test_a_pool_outside_loopback_is_refused() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        AddressPool("10.0.0.0/24")


def test_reserve_moves_the_owner_and_refuses_someone_elses_address() -> None:
    pool = AddressPool("127.10.0.0/24")
    a = pool.allocate("a")
    with pytest.raises(ValueError, match="already held"):
        pool.reserve("b", a)
    assert pool.reserve("b", "127.10.0.50") == "127.10.0.50"
    assert pool.reserve("b", "127.10.0.60") == "127.10.0.60"
    assert "127.10.0.50" not in pool
    assert pool.owner_of("127.10.0.60") == "b"
    assert pool.address_of("b") == "127.10.0.60"
    assert pool.owner_of("not an ip") is None
    with pytest.raises(ValueError, match="usable"):
        pool.reserve("c", "127.11.0.1")


def test_allocation_is_thread_safe() -> None:
    pool = AddressPool(POD_NETWORK)
    results: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        mine = [pool.allocate(f"{n}-{i}") for i in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 800


def test_a_reusing_pool_hands_out_the_lowest_free_address() -> None:
    pool = AddressPool("127.30.0.0/24", reuse=True)
    first, second, third = (pool.allocate(name) for name in ("a", "b", "c"))
    assert (first, second, third) == ("127.30.0.1", "127.30.0.2", "127.30.0.3")
    pool.release("c")
    pool.release("a")
    # The lowest released address first, then the next, then fresh ones.
    assert pool.allocate("d") == first
    assert pool.allocate("e") == third
    assert pool.allocate("f") == "127.30.0.4"
    # A released address someone reserved meanwhile is skipped.
    pool.release("b")
    pool.reserve("g", second)
    assert pool.allocate("h") == "127.30.0.5"
