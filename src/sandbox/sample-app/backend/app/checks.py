"""Checks the verification list runs on the host over SSH (verify.functional `command` checks).

    python -m app.checks task        # sends add(2, 3) through the broker, waits for the worker's answer
    python -m app.checks beat 20     # waits up to 20 s for a beat tick newer than now
"""
import sys
import time

from .celery_app import BEAT_KEY, add, store


def task() -> int:
    t0 = time.time()
    result = add.delay(2, 3).get(timeout=30)
    print(f"task ran: 2+3={result['sum']} on worker pid {result['pid']} in {time.time() - t0:.2f} s")
    return 0 if result["sum"] == 5 else 1


def beat(within: float) -> int:
    t0 = time.time()
    while time.time() - t0 < within:
        last = store().get(BEAT_KEY)
        if last is not None and float(last) > t0:
            print(f"beat fired {float(last) - t0:.2f} s after the check began")
            return 0
        time.sleep(0.2)
    print(f"no beat tick within {within} s (last: {store().get(BEAT_KEY)!r})")
    return 1


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "task":
        sys.exit(task())
    if what == "beat":
        sys.exit(beat(float(sys.argv[2]) if len(sys.argv) > 2 else 20))
    print(__doc__)
    sys.exit(2)
