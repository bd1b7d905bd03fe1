"""Domain services over storage: people, calendar, periods, ratings, data, sources and results."""
