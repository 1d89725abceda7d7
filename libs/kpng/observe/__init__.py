"""The observer's side: why a packet goes where it goes, and node views as JSON. Pure."""
