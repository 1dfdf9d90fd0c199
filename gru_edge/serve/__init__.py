"""`gru-edge serve`: an OpenAI-compatible local generation service over the runtime (needs the
[serve] extra: Starlette on uvicorn). scheduler batches concurrent requests per model, requests
checks a request's fields against the limits, app holds the routes, server runs it."""
