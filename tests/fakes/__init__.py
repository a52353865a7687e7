"""Fakes at the edge of the machine for tests and benchmarks: the stub VLM API server, the tiny VLM builder,
demo scenes. Test code only: no product package imports it."""
