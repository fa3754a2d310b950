"""Providers built from providers: routing, fallback chains, tools and the agent loop."""
