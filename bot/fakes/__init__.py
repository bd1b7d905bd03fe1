"""Test doubles of WeCom itself (server and signed callbacks); they import nothing of the app."""
