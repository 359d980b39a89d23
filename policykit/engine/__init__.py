"""The simulated mm: state (:mod:`.model`), mechanism (:mod:`.mm`), what policies see
(:mod:`.context`), what plugins declare (:mod:`.specs`), the engine's own declarations
(:mod:`.builtin`) and its invariants (:mod:`.invariants`)."""
