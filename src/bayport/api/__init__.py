"""The REST API: validates, authorises, writes rows and hands long work to the conductor."""
