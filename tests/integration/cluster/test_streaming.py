"""One session, sockets on two gateways: the engine carries the stream between nodes.

On one Redis and on a 3-master Redis Cluster (``each_cluster``).
"""

from __future__ import annotations

from chatrelay.llm.simulated import choose_answer
from tests.fixtures.cluster import RunningCluster
from tests.integration.cluster.clients import connect, new_session, new_user


async def test_two_sockets_on_two_gateways_both_get_the_whole_stream_in_order(
    each_cluster: RunningCluster, each_gateway_sources: dict[str, str]
) -> None:
    assert len(each_gateway_sources) >= 2, each_gateway_sources
    (first_node, first_source), (second_node, second_source) = list(each_gateway_sources.items())[
        :2
    ]
    user, session = new_user(), new_session()
    first = await connect(each_cluster, first_source, session_id=session, user_id=user)
    second = await connect(each_cluster, second_source, session_id=session, user_id=user)
    assert (first.welcome["node"], second.welcome["node"]) == (first_node, second_node)

    content = "hello from two gateways"
    message_id = await first.chat(content)
    seen_first = await first.follow(message_id)
    seen_second = await second.follow(message_id)

    expected = choose_answer(content)
    assert seen_first.text == seen_second.text == expected
    for turn in (seen_first, seen_second):
        assert turn.complete is not None
        assert (turn.complete["status"], turn.complete["content"]) == ("completed", expected)
        assert [c["seq"] for c in turn.chunks] == list(range(1, len(turn.chunks) + 1))
    # Same events, same offsets, no gap and no repeat, on both nodes.
    assert first.offsets() == second.offsets() == list(range(1, len(first.offsets()) + 1))
    await first.close()
    await second.close()
