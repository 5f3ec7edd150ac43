"""Every op's real reply, from a real daemon against the simulator, is what the `schema` op
says it is: validated with jsonschema against the schema the daemon itself serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from obsd.core.protocol import OPS
from tests.harness import registration


def validator(schema: dict[str, Any], op: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema["replies"][op], "$defs": schema["$defs"]})


def test_every_reply_matches_the_served_schema(short_dir: Path) -> None:
    replies: dict[str, Any] = {}
    with registration(short_dir, opening_in_s=30) as reg:
        reg.plan(ecrn=["21234"], scrn=["20456"])

        def call(op: str, **fields: Any) -> Any:
            response = reg.request(op, **fields)
            assert response["success"], (op, response)
            replies.setdefault(op, response["data"])
            return response["data"]

        schema = call("schema")
        # A watch beside the run: status lists it; cancel names it.
        watch_id = call("watch_seat", crn="22002", branch="BLG")["run_id"]
        for op in ("ping", "status", "config", "health", "test_token", "calibrate"):
            call(op)
        call("configure", config={"max_attempts": 10})
        call("events", after_seq=0, limit=5)
        run_id = call("start")["run_id"]
        call("status")  # now with an active run
        call("runs")
        call("run", run_id=run_id)
        call("cancel")
        call("cancel", run_id=watch_id)
        call("delete_run", run_id=run_id)
        call("login", username="ayse", password="not-her-password")
        call("test_login")  # refused by the simulated İTÜ: a reply all the same
        call("logout")
        with reg.daemon.client() as client:
            replies["tail"] = client.request("tail", after_seq=0)["data"]
    assert set(replies) == OPS, "every op was called"
    # The control: the schema does refuse what is not a reply.
    assert not validator(schema, "status").is_valid({"phase": "sleeping"})
    for op, data in replies.items():
        errors = [error.message for error in validator(schema, op).iter_errors(data)]
        assert not errors, (op, errors[:3])
