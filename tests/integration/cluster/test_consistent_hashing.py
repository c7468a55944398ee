"""``--lb consistent``: nginx hashes the ``session_id``, so a session sits on one gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.cluster import RunningCluster, running_cluster
from tests.integration.cluster.clients import SOURCES, connect, new_session, new_user


@pytest.fixture(scope="module")
def hashed_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    run_dir = tmp_path_factory.mktemp("hashed-cluster") / "run"
    with running_cluster(run_dir, gateways=2, workers=1, lb="consistent") as running:
        yield running


async def test_every_socket_of_a_session_lands_on_one_gateway_whatever_its_address(
    hashed_cluster: RunningCluster,
) -> None:
    user = new_user()
    for _ in range(4):
        session = new_session()
        nodes = set()
        for source in SOURCES[:4]:
            client = await connect(hashed_cluster, source, session_id=session, user_id=user)
            nodes.add(client.welcome["node"])
            await client.close()
        assert len(nodes) == 1, (session, nodes)


async def test_sessions_spread_over_the_gateways(hashed_cluster: RunningCluster) -> None:
    user = new_user()
    homes = {}
    for _ in range(16):  # all 16 on one of two gateways: about 1 in 30,000
        session = new_session()
        client = await connect(hashed_cluster, SOURCES[0], session_id=session, user_id=user)
        homes[session] = client.welcome["node"]
        await client.close()
    assert len(set(homes.values())) == 2, homes
