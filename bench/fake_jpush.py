"""A fake JPush for the delivery bench: the three calls our client makes, as JPush documents them, answered
at once; what it took counted so the bench can check that nothing went twice.

python bench/fake_jpush.py --port 8002   (always 127.0.0.1, one process, no access log)

    GET  /v3/push/cid?count=N&type=push   200 {"cidlist": ["<new cid>", ...]} (N ≤ 1000)
    POST /v3/push                         200 {"sendno": "0", "msg_id": "<n>"}; a cid seen before answers
                                          its first msg_id and counts as a duplicate (JPush sends it once)
    GET  /v3/received/detail?msg_ids=     200 [{"msg_id", "jpush_received": <devices>, ...}]
    GET  /stats                           200 {"pushes", "messages", "duplicates", "devices"} (ours, not JPush's)
"""

from __future__ import annotations

import argparse
import itertools
import uuid

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

app = Sanic("fake_jpush")
app.config.AUTO_EXTEND = False

_msg_ids = itertools.count(18_100_000_000_001)
_by_cid: dict[str, str] = {}
_devices: dict[str, int] = {}
_stats = {"pushes": 0, "messages": 0, "duplicates": 0, "devices": 0}


@app.get("/v3/push/cid")
async def cid(request: Request) -> HTTPResponse:
    count = min(int(request.args.get("count", "1")), 1000)
    return json({"cidlist": [uuid.uuid4().hex for _ in range(count)]})


@app.post("/v3/push")
async def push(request: Request) -> HTTPResponse:
    body = request.json or {}
    _stats["pushes"] += 1
    key = str(body.get("cid") or "")
    if key and key in _by_cid:
        _stats["duplicates"] += 1
        return json({"sendno": "0", "msg_id": _by_cid[key]})
    msg_id = str(next(_msg_ids))
    if key:
        _by_cid[key] = msg_id
    devices = len(body.get("audience", {}).get("registration_id", []))
    _devices[msg_id] = devices
    _stats["messages"] += 1
    _stats["devices"] += devices
    return json({"sendno": "0", "msg_id": msg_id})


@app.get("/v3/received/detail")
async def received(request: Request) -> HTTPResponse:
    ids = [m for m in request.args.get("msg_ids", "").split(",") if m]
    return json([{"msg_id": m, "jpush_received": _devices.get(m, 0), "android_pns_received": 0} for m in ids])


@app.get("/stats")
async def stats(request: Request) -> HTTPResponse:
    return json(_stats)


def main() -> None:
    parser = argparse.ArgumentParser(description="fake JPush for the delivery bench")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
