"""Core library of the CRM knowledge hub: no web or command-line code lives here."""
