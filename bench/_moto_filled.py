"""A moto S3 server whose buckets are filled straight in its backend, for the scale bench.

Filling 500,000 objects through the S3 API takes longer than the benchmark itself; written into
moto's in-memory backend they take seconds, and everything after that (the listings, HEADs, GETs
and PUTs the product sends) goes through moto's HTTP server as usual.

One change to moto: ListObjectsV2 without a delimiter is answered from a sorted index of the
bucket's key names kept between requests (rebuilt when the number of keys changes), instead of
sorting the whole bucket twice for every page of 1,000. The answer is the same (keys in order,
StartAfter, continuation tokens); without it a listing of 500,000 keys takes moto about ten
minutes, and the benchmark would measure moto. Keys are never deleted and re-added in the
benchmark, which is the one case the count check would miss.

argv[1]: JSON {"port": N, "buckets": [{"name", "region", "count", "prefix", "skipEvery"}]}.
Object i is `<prefix><i, 8 digits>.bin`, 100–400 bytes; `skipEvery` k leaves out every k-th.
Prints "ready <objects>" once it serves.
"""

import bisect
import json
import sys

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.s3 import models as s3models
from moto.s3.models import FakeDeleteMarker, s3_backends

spec = json.loads(sys.argv[1])

_index = {}


def _sorted_names(bucket):
    n = len(bucket.keys)
    cached = _index.get(bucket.name)
    if cached is None or cached[0] != n:
        cached = (n, sorted(bucket.keys.keys()))
        _index[bucket.name] = cached
    return cached[1]


_original = s3models.S3Backend.list_objects_v2


def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
    if delimiter:
        return _original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
    names = _sorted_names(bucket)
    after = None
    if continuation_token:
        after = self._pagination_tokens.get(continuation_token)
    elif start_after:
        after = start_after
    i = bisect.bisect_right(names, after) if after is not None else 0
    if prefix:
        i = max(i, bisect.bisect_left(names, prefix))
    out = []
    truncated = False
    while i < len(names):
        name = names[i]
        if prefix and not name.startswith(prefix):
            break
        i += 1
        key = bucket.keys.get(name)
        if key is None or isinstance(key, FakeDeleteMarker):
            continue
        if len(out) == max_keys:
            truncated = True
            break
        out.append(key)
    token = None
    if truncated and out:
        token = s3models.md5_hash(out[-1].name.encode("utf-8")).hexdigest()
        self._pagination_tokens[token] = out[-1].name
    return out, truncated, token


s3models.S3Backend.list_objects_v2 = list_objects_v2

backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
total = 0
for b in spec["buckets"]:
    backend.create_bucket(b["name"], b.get("region", "us-east-1"))
    prefix = b.get("prefix", "media/")
    skip = b.get("skipEvery", 0)
    for i in range(b["count"]):
        if skip and i % skip == 0:
            continue
        body = (b"%08d" % i) * (12 + (i * 7919) % 38)
        backend.put_object(b["name"], "%s%08d.bin" % (prefix, i), body)
        total += 1

server = ThreadedMotoServer("127.0.0.1", spec["port"], verbose=False)
server.start()
print("ready %d" % total, flush=True)
try:
    sys.stdin.read()  # until the benchmark closes our stdin (or is gone)
finally:
    server.stop()
