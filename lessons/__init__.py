"""Eight lessons that build the reference app step by step; see lessons/README.md."""
