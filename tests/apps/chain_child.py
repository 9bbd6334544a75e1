"""The CLI a parent runs: one requests.get to the URL it is given."""

import sys

import requests

print(requests.get(sys.argv[1], timeout=10).text, flush=True)
