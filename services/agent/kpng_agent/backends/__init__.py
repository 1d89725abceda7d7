"""Dataplane backends of the agent."""
