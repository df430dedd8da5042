"""benchmarks._receiver: the webhook receiver of the fan-out scenario answers and counts."""

import httpx

from benchmarks._receiver import app


async def test_the_receiver_answers_204_to_a_delivery_and_counts_it() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        before = (await client.get("/count")).json()["received"]
        answer = await client.post("/hook", content=b'{"type": "task.succeeded"}')
        assert answer.status_code == 204
        assert (await client.get("/count")).json() == {"received": before + 1}
        assert (await client.get("/elsewhere")).status_code == 404
