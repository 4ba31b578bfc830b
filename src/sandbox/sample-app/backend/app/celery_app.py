"""One Celery task and one beat schedule, like the plan's gogojap-celery and gogojap-celery-beat."""
import os
import time

import redis
from celery import Celery

from . import release

app = Celery(
    "app",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/2"),
)
app.conf.update(
    beat_schedule={"tick": {"task": "app.celery_app.tick", "schedule": 2.0}},
    beat_schedule_filename=os.path.join(os.path.expanduser("~"), "celerybeat-schedule"),
    broker_connection_retry_on_startup=True,
)

BEAT_KEY = "sample:beat:last"


def store() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.task
def add(x: int, y: int) -> dict:
    return {"sum": x + y, "release": release(), "pid": os.getpid()}


@app.task
def tick() -> float:
    now = time.time()
    store().set(BEAT_KEY, repr(now))
    return now
