//! Runnable membus examples: see the `[[example]]` targets of this package.
