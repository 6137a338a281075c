"""The AI gateway: OpenAI-shaped routes to OpenAI, DeepSeek or model_host, and the code review itself."""
