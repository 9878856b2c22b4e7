"""What enters a run: instruction sets with the one row reader, SFT data, text sanitizing."""
