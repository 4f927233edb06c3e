"""Storage backends behind one interface (:mod:`ratekeeper.backends.store`)."""
