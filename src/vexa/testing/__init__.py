"""Test support that ships with Vexa: SIMULATED meeting pages and process helpers.

Nothing here talks to a real meeting platform.
"""
