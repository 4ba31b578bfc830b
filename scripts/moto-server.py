"""moto's server, with CloudFront's origin groups accepted as real CloudFront accepts them.

moto 5 checks that a distribution's DefaultCacheBehavior.TargetOriginId names one of its
Origins and answers NoSuchOrigin otherwise (moto/cloudfront/models.py, DistributionConfig),
but CloudFront also accepts the Id of one of the distribution's OriginGroups there: "When you
create or update a distribution, you can specify the origin group instead of a single origin"
(https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_OriginGroup.html), and "you
create or update a cache behavior to use the origin group"
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/high_availability_origin_failover.html).
This launcher widens that one check (a group whose members are all origins of the distribution
counts as a target; anything else is still NoSuchOrigin) and then runs moto.server's own main
with the same arguments. site-packages is not edited; every SDK call stays a real one.

Usage: python3 scripts/moto-server.py -H 127.0.0.1 -p 5000
With CUTOVER_MOTO_STDIN_EXIT=1 the server ends when its stdin closes (a parent that dies leaves
no server behind).
"""

import os
import runpy
import sys
import threading

from moto.cloudfront import models
from moto.cloudfront.exceptions import OriginDoesNotExist

_original_init = models.DistributionConfig.__init__


def _groups(config):
    groups = (config.get("OriginGroups") or {}).get("Items") or []
    if isinstance(groups, dict):  # one item parsed from XML without a list around it
        groups = [groups]
    return groups


def _members(group):
    items = ((group.get("Members") or {}).get("Items")) or []
    if isinstance(items, dict):
        items = [items]
    return [m.get("OriginId") for m in items]


def _init(self, config):
    target = (config.get("DefaultCacheBehavior") or {}).get("TargetOriginId")
    origins = [o.get("Id") for o in (config.get("Origins") or {}).get("Items") or []]
    group = next((g for g in _groups(config) if g.get("Id") == target), None)
    if group is None or target in origins:
        return _original_init(self, config)
    members = _members(group)
    if not members or any(m not in origins for m in members):
        raise OriginDoesNotExist
    # moto's check runs against the group's primary; the distribution keeps the group as its target
    behaviour = dict(config["DefaultCacheBehavior"])
    config["DefaultCacheBehavior"] = {**behaviour, "TargetOriginId": members[0]}
    _original_init(self, config)
    self.DefaultCacheBehavior.target_origin_id = target


models.DistributionConfig.__init__ = _init

if os.environ.get("CUTOVER_MOTO_STDIN_EXIT") == "1":
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()

sys.argv = ["moto.server", *sys.argv[1:]]
runpy.run_module("moto.server", run_name="__main__")
