"""One router module per resource; api/app.py collects them."""
