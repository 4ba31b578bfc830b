"""The sample app: settings come from the .env next to the app folder (written by host.setup)."""
import os

from dotenv import load_dotenv

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
load_dotenv(os.path.join(APP_DIR, ".env"))


def release() -> str:
    try:
        with open(os.path.join(APP_DIR, "RELEASE"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return "unknown"
