"""Imported by imports.py; not a program of its own."""


def twice(x):
    return x * 2
