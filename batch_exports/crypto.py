"""Encryption at rest of destination configs (Fernet; several keys allow rotation, newest first)."""

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class ConfigCipher:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("BATCH_EXPORTS_ENCRYPTION_KEY is empty: set at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k) for k in parts])

    def encrypt(self, config: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(config, sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token))  # type: ignore[no-any-return]
        except InvalidToken:
            raise ValueError(
                "a destination config could not be decrypted: BATCH_EXPORTS_ENCRYPTION_KEY does not hold "
                "the key it was written with"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
