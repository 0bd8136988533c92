"""The baseline: a bare Sanic app with one JSON route, served the way the service serves itself.

python bench/bare_app.py --port 8001   (always 127.0.0.1, one process, no access log, no motd, no sanic-ext)
"""

from __future__ import annotations

import argparse

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

app = Sanic("bare")
app.config.AUTO_EXTEND = (
    False  # no sanic-ext (openapi, injection…) even though it is installed: bare means bare
)


@app.get("/")
async def index(request: Request) -> HTTPResponse:
    return json({"status": "ok", "service": "bare"})


def main() -> None:
    parser = argparse.ArgumentParser(description="bare Sanic app for the benchmark baseline")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
