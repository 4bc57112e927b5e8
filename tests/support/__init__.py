"""Test helpers: real servers on free ports, started and killed by the tests."""
