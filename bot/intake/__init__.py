"""The early-warning intake: partner companies' HTTP API and web form."""
