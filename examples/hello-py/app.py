"""hello-py: the Python flavour of the hello app, built with componentize-py and
Spin's Python SDK. It exports wasi:http/handler@0.3.0 like the Rust SDK 7 example,
but carries a whole CPython inside (tens of MB), so it shows what the gateway's
load, AOT-compile and instantiate paths cost for a heavy component. Optional:
nothing else depends on it."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        return Response(200, {"content-type": "text/plain"}, b"Hello from Python\n")
