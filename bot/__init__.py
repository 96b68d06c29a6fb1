"""Fabro runs in Slack: query, follow and steer Fabro runs with /runs and channel alerts."""

__version__ = "0.1.0"
