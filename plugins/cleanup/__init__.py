"""Graph clean-up passes every target runs first: constant folding and dead-code elimination."""
