"""Test helpers importable by tests, demo and bench: sample data and CRM contract servers."""
