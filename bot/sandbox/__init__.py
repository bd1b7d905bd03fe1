"""The browser sandbox: the real bot beside the built-in fake WeCom, its seed and sample data."""
