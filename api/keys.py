"""Typed keys of what the application and its requests hold."""

import asyncpg
from aiohttp import web
from temporalio.client import Client

from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
SOURCE_POOL = web.AppKey("source_pool", asyncpg.Pool)
TEMPORAL = web.AppKey("temporal", Client)
CIPHER = web.AppKey("cipher", ConfigCipher)
