"""The HTTP client of run.sh's steps: POSTs JSON to the `quiver serve` that run.sh started."""
import json
import urllib.error
import urllib.request


def poster(port):
    """post(path, body) -> (status, answer): an HTTP error gives its status and JSON body."""

    def post(path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode())
        try:
            return 200, json.load(urllib.request.urlopen(req))
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    return post
