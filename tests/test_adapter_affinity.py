"""Adapter-affine routing: the ingress names a request's adapter (multiplexed_model_id) and the
model deployment's request router (serving/routing.py) sends it to the adapter's home replica
(bench/adapter_affinity.py counts the loads it saves on a real Serve app). Ray-free: the
ingress's own _generate on a stand-in handle, and the router's choice on stand-in replicas."""

import asyncio
import random
import types

import pytest

from sqlfoundry.serving.config import parse_serve_config
from sqlfoundry.serving.engine import SqlRequest


class Handle:
    """A DeploymentHandle stand-in: records the multiplexed model id each call was sent with."""

    def __init__(self, sent: list, model_id=None):
        self.sent, self.model_id = sent, model_id
        self.generate = types.SimpleNamespace(remote=self._remote)

    def options(self, multiplexed_model_id: str):
        return Handle(self.sent, multiplexed_model_id)

    async def _remote(self, request):
        self.sent.append(self.model_id)
        return {"error": None, "sql": "SELECT 1", "adapter": request.adapter}


@pytest.mark.parametrize("adapter, affinity, routed", [
    (None, True, None),  # the base model: any replica
    ("alpha", True, "alpha"),
    ("alpha@prod", True, "alpha"),  # by name: an alias promotion keeps the replica that serves alpha
    ("alpha@20261201T000000.000000000-abcdef", True, "alpha"),  # a pinned version
    ("alpha", False, None),  # args.adapter_affinity off: Serve's default routing
])
def test_requests_are_routed_by_adapter_name(adapter, affinity, routed):
    from sqlfoundry.serving.app import SQLIngress

    sent: list = []
    ingress = types.SimpleNamespace(model=Handle(sent), model_budget_s=None,
                                    config=parse_serve_config({"adapter_affinity": affinity}))
    generate = SQLIngress.func_or_class._generate
    asyncio.run(generate(ingress, SqlRequest("CREATE TABLE t (a INTEGER)", "q", 8, adapter=adapter)))
    assert sent == [routed]


def test_adapter_affinity_is_on_by_default_and_typed():
    from sqlfoundry.serving.config import ServeConfigError

    assert parse_serve_config({}).adapter_affinity is True
    with pytest.raises(ServeConfigError, match="adapter_affinity"):
        parse_serve_config({"adapter_affinity": "sometimes"})


def test_rendezvous_order_is_stable_and_spreads():
    from sqlfoundry.serving.routing import rank_by_home

    adapters = [f"adapter{i}" for i in range(400)]
    three = ["r1", "r2", "r3"]
    homes = {a: rank_by_home(a, three)[0] for a in adapters}
    assert homes == {a: rank_by_home(a, list(reversed(three)))[0] for a in adapters}  # order does not matter
    assert min(list(homes.values()).count(r) for r in three) > 100  # about 133 each


@pytest.mark.parametrize("replicas, per_replica", [(["r1", "r2"], 4), (["a", "b", "c"], 2), (["x", "y"], 1)])
def test_capacity_decides_homes_so_adapters_that_fit_settle_for_good(replicas, per_replica):
    """As many adapters as the replicas hold in total: each lands on a replica with room, whatever the
    hashes say, and after that every request goes to the same home (no drift, no second load)."""
    from sqlfoundry.serving.routing import Homes

    homes = Homes(per_replica)
    adapters = [f"t{i}" for i in range(len(replicas) * per_replica)]
    first = {a: homes.route(a, replicas)[0] for a in adapters}
    assert sorted(list(first.values()).count(r) for r in replicas) == [per_replica] * len(replicas)
    rng = random.Random(0)
    assert all(homes.route(a, replicas)[0] == first[a] for a in (rng.choice(adapters) for _ in range(500)))


def test_past_capacity_the_least_recently_routed_adapter_gives_up_its_home():
    from sqlfoundry.serving.routing import Homes

    homes = Homes(1)
    a, b = homes.route("a", ["r1", "r2"])[0], homes.route("b", ["r1", "r2"])[0]
    assert {a, b} == {"r1", "r2"}
    homes.route("a", ["r1", "r2"])  # b is now the least recently routed on its replica... and a on its own
    c = homes.route("c", ["r1", "r2"])[0]  # no room: c takes its first-ranked replica's slot
    evicted = "a" if c == a else "b"
    assert evicted not in homes.home and homes.home["c"] == c


def test_a_replica_gone_takes_only_its_homes_with_it():
    from sqlfoundry.serving.routing import Homes

    homes = Homes(4)
    placed = {f"t{i}": homes.route(f"t{i}", ["r1", "r2", "r3"])[0] for i in range(9)}
    stayed = {a: r for a, r in placed.items() if r != "r3"}
    assert all(homes.route(a, ["r1", "r2"])[0] == r for a, r in stayed.items())
    moved = [a for a, r in placed.items() if r == "r3"]
    assert moved and all(homes.route(a, ["r1", "r2"])[0] in ("r1", "r2") for a in moved)


def test_the_router_sends_an_adapter_home_first_and_base_requests_to_two_at_random():
    from sqlfoundry.serving.routing import AdapterAffinityRouter, Homes

    replicas = [types.SimpleNamespace(replica_id=types.SimpleNamespace(unique_id=f"r{i}")) for i in range(3)]

    def pending(model_id: str):
        return types.SimpleNamespace(metadata=types.SimpleNamespace(multiplexed_model_id=model_id))

    router = types.SimpleNamespace(homes=Homes(4))
    choose = AdapterAffinityRouter.choose_replicas
    ranks = asyncio.run(choose(router, replicas, pending("alpha")))
    home = router.homes.home["alpha"]
    assert [[r.replica_id.unique_id for r in rank] for rank in ranks][0] == [home]
    assert sorted(r.replica_id.unique_id for r in ranks[1]) == sorted({"r0", "r1", "r2"} - {home})
    [two] = asyncio.run(choose(router, replicas, pending("")))
    assert len(two) == 2 and len({r.replica_id.unique_id for r in two}) == 2
    assert asyncio.run(choose(router, [], pending("alpha"))) == []
