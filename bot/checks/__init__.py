"""Reply checks: what a model reply may show (cleaning, hidden-prompt and echo checks, defects)."""
