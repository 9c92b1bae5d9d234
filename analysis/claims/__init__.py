"""Claims: a verdict on each of the paper's findings, with its statistic, CI and noise floor."""
