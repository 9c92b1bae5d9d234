"""Running it for people: the console, one-line errors and the Ray metrics."""
