"""Readers and writers: every file format the package touches is read or written here."""
