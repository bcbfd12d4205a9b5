"""The test suite: pure functions, components under mocks, programs, real servers."""
