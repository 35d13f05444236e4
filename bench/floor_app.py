"""Floor for the bench: the cheapest Quart push endpoint (read the body, answer `success`)."""
from __future__ import annotations

from quart import Quart, request

app = Quart(__name__)


@app.post("/")
async def push() -> str:
    """Read the body and acknowledge, doing nothing else."""
    await request.get_data()
    return "success"
