"""``openfer serve``: the web service and web page (FastAPI + uvicorn, the ``[serve]`` extra)."""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "run"]


def run(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        log_level: str = "info") -> None:
    """Serve ``config`` with uvicorn; ``workers`` > 1 starts that many processes."""
    import json
    import os
    from dataclasses import asdict

    import uvicorn

    if workers > 1:
        settings = asdict(config)
        settings.pop("api_key")                     # handed over by environment, not as JSON
        os.environ["OPENFER_SERVE_CONFIG"] = json.dumps(settings)
        if config.api_key:
            os.environ["OPENFER_API_KEY"] = config.api_key
        uvicorn.run("openfer.serve.app:create_app_from_env", factory=True, host=host,
                    port=port, workers=workers, log_level=log_level)
    else:
        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)
