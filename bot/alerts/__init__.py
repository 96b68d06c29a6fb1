"""Channel alerts: what deserves one (rules), where it goes, and how it stays true."""
