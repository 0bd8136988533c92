"""The kernel every area stands on, and nothing about any one area."""
