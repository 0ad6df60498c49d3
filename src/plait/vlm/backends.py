"""One place that turns options (command line, config, a saved model's record) into a
ready backend: a local hub model or an OpenAI-compatible server, behind the on-disk cache.

Both backends are imported here, inside the function, so `plait --help` and `import
plait.vlm` load neither transformers nor httpx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plait.config import VlmConfig, explain_validation_error
from plait.errors import ConfigError
from plait.vlm.base import VlmBackend


def vlm_config(**options: Any) -> VlmConfig:
    """A checked `VlmConfig` from keyword options (None means: the default)."""
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return VlmConfig(**given)
    except ValidationError as error:
        raise ConfigError(explain_validation_error(error, "large-model options")) from None


def make_backend(config: VlmConfig) -> VlmBackend:
    """The backend `config` names, wrapped in `CachedBackend` unless `cache` is off."""
    backend: VlmBackend
    if config.provider == "openai":
        from plait.vlm.openai_chat import OpenAIChatBackend

        backend = OpenAIChatBackend(
            str(config.base_url),
            config.model,
            api_key_env=config.api_key_env,
            concurrency=config.concurrency,
            requests_per_minute=config.requests_per_minute,
            max_retries=config.max_retries,
            timeout_s=config.timeout_s,
        )
    else:
        from plait.vlm.hub import HubVlmBackend

        backend = HubVlmBackend(
            config.model, device=config.device, dtype=config.dtype, batch_size=config.batch_size
        )
    if not config.cache:
        return backend
    from plait.vlm.cache import CachedBackend, default_cache_dir

    folder = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    return CachedBackend(backend, folder)
