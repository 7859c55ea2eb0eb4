"""How many offending keys a failed check names: enough to find the problem, few enough for a message."""

EXAMPLES = 5
