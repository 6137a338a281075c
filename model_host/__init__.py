"""model_host: a small local GGUF model behind OpenAI-compatible routes.

`python -m model_host` serves `POST /v1/chat/completions`, `GET /v1/models` and `GET /health`
on MODEL_HOST_HOST:MODEL_HOST_PORT; see `model_host.settings.Settings` for the environment.
"""
