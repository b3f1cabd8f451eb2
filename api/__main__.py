"""Run the gateway alone: `python -m api` (settings from the environment, see the README)."""

import logging

from aiohttp import web

from api.app import create_app
from batch_exports.settings import get_settings

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.api_host, port=settings.api_port)
