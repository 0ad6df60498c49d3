"""A generated corpus of odd-but-valid and hostile inputs (see `tests.corpus.build`)."""
