"""Providers: one file each; they only translate requests and responses."""
