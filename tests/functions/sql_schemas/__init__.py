"""A project with one SQL source: accounts changes from a CRM table (the SQL trigger tests)."""
