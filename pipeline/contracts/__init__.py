"""Contracts: what every layer agrees on (schemas, Pydantic models, key formats, category policy, rules, settings).

Imports nothing else of the package.
"""
