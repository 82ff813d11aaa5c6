"""Partitioning by key: stable placement, per-key order, and what a new partition moves."""

from __future__ import annotations

import pytest

from snippets.messaging.message_routing_partitions import (
    HashRing,
    main,
    modulo_partition,
    moved,
    stable_hash,
)

KEYS = [f"user-{n}" for n in range(2000)]


def test_the_demo_keeps_each_users_entries_together_and_counts_the_moves(capsys):
    main()
    assert capsys.readouterr().out == (
        "partition 0: ['dan: slept badly', 'dan: walked']\n"
        "partition 1: ['ana: ran 3 km', 'ana: set goal 10 km', 'ana: ran 5 km']\n"
        "partition 2: ['zoe: meditated']\n"
        "3 -> 4 partitions, keys that move: modulo 75%, ring 27%\n")


def test_the_hash_is_stable_across_processes_unlike_hash():
    import subprocess
    import sys
    code = ("import hashlib; "
            "print(int.from_bytes(hashlib.blake2b(b'ana', digest_size=8).digest(), 'big'))")
    other = subprocess.run([sys.executable, "-c", code],
                           capture_output=True, text=True, check=True)
    assert stable_hash("ana") == int(other.stdout)
    assert stable_hash("ana") == stable_hash("ana") != stable_hash("anb")


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_growing_a_ring_moves_keys_only_to_the_new_partition(n):
    before = HashRing([f"p{i}" for i in range(n)])
    after = HashRing([f"p{i}" for i in range(n + 1)])
    for key in KEYS[:500]:
        if before.owner(key) != after.owner(key):
            assert after.owner(key) == f"p{n}"


def test_a_ring_moves_about_one_share_where_modulo_moves_most():
    three, four = HashRing(["a", "b", "c"]), HashRing(["a", "b", "c", "d"])
    ring = moved(KEYS, {k: three.owner(k) for k in KEYS}, {k: four.owner(k) for k in KEYS})
    modulo = moved(KEYS, {k: modulo_partition(k, 3) for k in KEYS},
                   {k: modulo_partition(k, 4) for k in KEYS})
    assert 0.15 < ring < 0.35 and modulo > 0.6


def test_virtual_nodes_spread_keys_evenly():
    ring = HashRing([f"p{i}" for i in range(4)])
    shares = [sum(ring.owner(k) == f"p{i}" for k in KEYS) / len(KEYS) for i in range(4)]
    assert all(0.15 < share < 0.35 for share in shares), shares


def test_nonsense_partition_counts_are_refused():
    with pytest.raises(ValueError, match="at least 1 partition, got 0"):
        modulo_partition("ana", 0)
    with pytest.raises(ValueError, match="at least one partition"):
        HashRing([])
