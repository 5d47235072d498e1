"""Provider API keys at rest: Fernet with CONFIG_ENCRYPTION_KEY (comma-separated keys rotate:
the first encrypts, every one decrypts). Plaintext keys are never logged nor returned."""

from __future__ import annotations

from config.settings import ConfigError, Settings


class ConfigCipher:
    def __init__(self, keys: str) -> None:
        # imported here: only a deployment with CONFIG_ENCRYPTION_KEY pays for cryptography
        from cryptography.fernet import Fernet, InvalidToken, MultiFernet

        self._invalid_token = InvalidToken
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    @classmethod
    def from_settings(cls, settings: Settings) -> "ConfigCipher | None":
        """None without CONFIG_ENCRYPTION_KEY; a bad key stops start-up naming the variable."""
        secret = settings.config_encryption_key
        if secret is None or not secret.get_secret_value().strip():
            return None
        try:
            return cls(secret.get_secret_value())
        except (ValueError, TypeError):
            raise ConfigError(
                "invalid configuration:\n  CONFIG_ENCRYPTION_KEY: must be a Fernet key (32 url-safe base64 bytes; "
                "create one with `python -c \"from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())\"`)") from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext; raises ValueError when no configured key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except self._invalid_token:
            raise ValueError("API key encrypted with a key not in CONFIG_ENCRYPTION_KEY") from None
