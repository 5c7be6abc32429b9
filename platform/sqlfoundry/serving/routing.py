"""Adapter-affine replica choice for the model deployment (a Ray Serve request router).

Each adapter is given a home replica, and its requests go there, so a replica loads the adapters
it is home to rather than every adapter in turn. The router keeps a mirror of each replica's
adapter LRU (`adapters_per_replica`, the deployment's max_loaded_adapters): a new adapter's home is
the first replica with a free slot in its rendezvous order (the replicas ranked by a hash of
(adapter, replica id)); when every replica is full, its first-ranked replica, whose least recently
routed adapter gives up its slot, as the replica's own LRU would evict it. Capacity decides where
adapters live, so 8 adapters on 2 replicas of 4 settle at 4 each, however the hashes fall; the
hash only breaks ties, so routers of several ingress replicas mostly agree. A replica that goes
away takes its homes with it; they find new ones on their next request.

A request for an adapter goes to its home; when the home is at max_ongoing_requests, Serve's router
takes the next rank, the other replicas by queue length. Requests without an adapter get the power
of two choices, as with Serve's default router.

Why not Serve's multiplexing routing: it prefers replicas that report a model and sends a model no
replica reports to the replica reporting the fewest; with as many adapters as the replicas hold in
total nothing settles, and bench/adapter_affinity.py measured more loads than random routing.

The ingress names the adapter in `multiplexed_model_id` (serving/app.py, args.adapter_affinity).
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

ROUTER_CLASS = "sqlfoundry.serving.routing:AdapterAffinityRouter"


def _weight(adapter: str, replica_id: str) -> int:
    # hashlib, not hash(): every ingress process must rank the replicas alike.
    return int.from_bytes(hashlib.blake2b(f"{adapter}\0{replica_id}".encode(), digest_size=8).digest(), "big")


def rank_by_home(adapter: str, replica_ids: list[str]) -> list[str]:
    """`replica_ids` in the adapter's rendezvous order: first choice first."""
    return sorted(replica_ids, key=lambda replica_id: _weight(adapter, replica_id), reverse=True)


class Homes:
    """Which replica is home to which adapter, with each replica's adapters in LRU order."""

    def __init__(self, per_replica: int):
        self.per_replica = per_replica
        self.by_replica: dict[str, OrderedDict[str, None]] = {}
        self.home: dict[str, str] = {}

    def route(self, adapter: str, replica_ids: list[str]) -> list[str]:
        """`replica_ids` in the order to try for `adapter`: its home first."""
        for gone in set(self.by_replica) - set(replica_ids):
            for lost in self.by_replica.pop(gone):
                self.home.pop(lost, None)
        ranked = rank_by_home(adapter, replica_ids)
        home = self.home.get(adapter)
        if home is None:
            home = next((r for r in ranked if len(self.by_replica.get(r, ())) < self.per_replica), ranked[0])
            slots = self.by_replica.setdefault(home, OrderedDict())
            if len(slots) >= self.per_replica:
                evicted, _ = slots.popitem(last=False)
                self.home.pop(evicted, None)
            slots[adapter] = None
            self.home[adapter] = home
        self.by_replica[home].move_to_end(adapter)
        return [home] + [r for r in ranked if r != home]


class AdapterAffinityRouter(RequestRouter):
    # No FIFOMixin: a replica found for one request must go to that request, not the oldest waiting.
    def initialize_state(self, adapters_per_replica: int = 4, **kwargs):
        self.homes = Homes(adapters_per_replica)

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        adapter = pending_request.metadata.multiplexed_model_id if pending_request is not None else ""
        if not adapter:  # two at random; Serve's router takes the shorter queue of the rank
            return [random.sample(candidate_replicas, min(2, len(candidate_replicas)))]
        by_id = {replica.replica_id.unique_id: replica for replica in candidate_replicas}
        home, *others = self.homes.route(adapter, list(by_id))
        return [[by_id[home]], [by_id[replica_id] for replica_id in others]] if others else [[by_id[home]]]
