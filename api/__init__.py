"""The FastAPI service: ``create_app(settings)`` in api.main; ``uvicorn api.main:app`` serves the defaults."""
